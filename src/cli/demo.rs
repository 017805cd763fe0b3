//! `firedrill demo`: a practice environment out of the box. One command starts the daemon with
//! the shop's proxies (`proxies/shop.json`), the example shop under the supervisor, and a drill
//! with its synthetic traffic; then walks a newcomer through it, or (`--auto`) plays a scripted
//! responder and prints the scorecard. Everything it started is stopped before it returns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use tokio_util::sync::CancellationToken;

use super::Failure;
use super::remote::{self as client, Remote};
use crate::run::manager::{Manager, RunDirs, RunView};
use crate::serve::{Daemon, ServeOptions};
use crate::shop::Ports;
use crate::supervise::envfile;

/// The drill `--auto` plays unless told otherwise: quick, and every part of firedrill shows.
pub const AUTO_DRILL: &str = "partner-503-burst";
/// How long the shop may take to become healthy.
const SHOP_READY: Duration = Duration::from_secs(30);

/// What `firedrill demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Play a scripted responder and finish by itself.
    pub auto: bool,
    /// The drill (default: `partner-503-burst` with `--auto`, a random one otherwise).
    pub drill: Option<String>,
    /// Seed of the run's draws.
    pub seed: Option<u64>,
    /// The shop and its proxies on free ports rather than the standard ones.
    pub free_ports: bool,
}

/// A correct diagnosis made from a drill's answer key: the first word of every group.
fn correct_diagnosis(key: &crate::drill::AnswerKey) -> String {
    let words: Vec<&str> = key.accept.iter().filter_map(|g| g.first().map(String::as_str)).collect();
    format!("the {}", words.join(" "))
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(anyhow!("{e}"))
}

/// `firedrill demo`, from a firedrill checkout (it needs `proxies/shop.json` and `drills/`).
pub fn run(options: &DemoOptions) -> Result<(), Failure> {
    let root = std::env::current_dir().map_err(failed)?;
    let (proxies, drills) = (root.join("proxies/shop.json"), root.join("drills"));
    if !proxies.exists() || !drills.is_dir() {
        return Err(Failure::BadInput(anyhow!(
            "run the demo from a firedrill checkout: it needs proxies/shop.json and drills/ in {}",
            root.display()
        )));
    }
    let work = std::env::temp_dir().join(format!("firedrill-demo-{}", std::process::id()));
    // The shop's working directory, its journals and logs.
    std::fs::create_dir_all(&work).map_err(failed)?;
    let (ports, proxies, drills) = if options.free_ports {
        relocated(&proxies, &drills, &work).map_err(failed)?
    } else {
        (Ports::STANDARD, proxies, drills)
    };
    let runtime = tokio::runtime::Runtime::new().map_err(failed)?;
    match runtime.block_on(demo(options, ports, proxies, drills, &work)) {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&work);
            Ok(())
        }
        // A failed demo keeps the shop's logs: they say why.
        Err(Failure::Failed(e)) if work.join("data/logs").is_dir() => {
            Err(Failure::Failed(anyhow!("{e}\nthe shop's logs are kept in {}", work.join("data/logs").display())))
        }
        Err(other) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(other)
        }
    }
}

/// The shop's proxy file and the drills, moved to free ports, in `work`.
fn relocated(proxies: &Path, drills: &Path, work: &Path) -> std::io::Result<(Ports, PathBuf, PathBuf)> {
    let ports = Ports::free()?;
    let (moved_proxies, moved_drills) = (work.join("shop.json"), work.join("drills"));
    std::fs::write(&moved_proxies, ports.relocate(&std::fs::read_to_string(proxies)?))?;
    std::fs::create_dir_all(&moved_drills)?;
    for entry in std::fs::read_dir(drills)? {
        let path = entry?.path();
        if let (Some(name), Ok(text)) = (path.file_name(), std::fs::read_to_string(&path)) {
            std::fs::write(moved_drills.join(name), ports.relocate(&text))?;
        }
    }
    Ok((ports, moved_proxies, moved_drills))
}

async fn demo(
    options: &DemoOptions,
    ports: Ports,
    proxies: PathBuf,
    drills: PathBuf,
    work: &Path,
) -> Result<(), Failure> {
    // Interactive: the usual addresses, so the CLI verbs in a second terminal need no flags.
    let (api, control) = if options.auto {
        ("127.0.0.1:0".parse().map_err(failed)?, "127.0.0.1:0".parse().map_err(failed)?)
    } else {
        ("127.0.0.1:8474".parse().map_err(failed)?, crate::control::DEFAULT_ADDR.parse().map_err(failed)?)
    };
    // Scorecards go where `firedrill report` looks by default; journals and logs stay in `work`.
    let dirs = RunDirs { drills, data: work.join("data"), scorecards: PathBuf::from("scorecards") };
    let serve = ServeOptions {
        api,
        token: None,
        seed: options.seed,
        files: vec![proxies],
        control,
        dirs,
        toxiproxy: None,
        backlog: None,
        caps: crate::proxy::budget::Caps::default(),
        alertmanagers: Vec::new(),
        webhook_token: None,
        // The demo schedules nothing: its game days are started by hand.
        gamedays: work.join("gamedays"),
    };
    let daemon = Daemon::start(serve).await.map_err(|error| match Failure::from(error) {
        Failure::Failed(e) => Failure::Failed(anyhow!(
            "{e:#} (the demo needs {} free{})",
            ports.describe(),
            if options.free_ports { "" } else { "; or try `firedrill demo --free-ports`" }
        )),
        other @ Failure::BadInput(_) => other,
    })?;
    let (manager, control) = (daemon.manager.clone(), daemon.control);
    let console = Console {
        now: format!("http://{}/ui/", daemon.api),
        join: format!("http://{}{}", daemon.api, daemon.console.responder_link()),
    };
    let stop = CancellationToken::new();
    let serving = tokio::spawn(daemon.run(stop.clone().cancelled_owned()));
    let outcome = practise(options, ports, &manager, control, work, &console).await;
    // Whatever happened: the run ends, the shop stops, the daemon stops.
    let _ = manager.abort_all("demo").await;
    let stopped = manager.supervisor().down().await;
    stop.cancel();
    let _ = serving.await;
    if !stopped.is_empty() {
        println!("\nstopped the shop ({}) and the daemon; nothing is left running", stopped.join(", "));
    }
    outcome
}

/// Where the game-day console of the demo's daemon is.
struct Console {
    /// The Now page (the projector).
    now: String,
    /// The link a responder opens.
    join: String,
}

async fn practise(
    options: &DemoOptions,
    ports: Ports,
    manager: &std::sync::Arc<Manager>,
    control: std::net::SocketAddr,
    work: &Path,
    console: &Console,
) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(failed)?;
    let env_path = work.join("shop.toml");
    let services = envfile::parse(&env_path, &crate::shop::environment(&exe, ports))
        .map_err(|errors| failed(errors[0].to_string()))?;
    let supervisor = manager.supervisor();
    supervisor.up(services).map_err(failed)?;
    println!(
        "starting the example shop: gateway :{} -> wallet :{} (gRPC, via proxy :{}) -> partner :{} (via :{}), ledger :{} (via :{})",
        ports.gateway,
        ports.wallet,
        ports.wallet_proxy,
        ports.partner,
        ports.partner_proxy,
        ports.ledger,
        ports.ledger_proxy
    );
    let deadline = tokio::time::Instant::now() + SHOP_READY;
    while !supervisor.ps().iter().all(|r| r.state == crate::supervise::ReplicaState::Healthy) {
        if tokio::time::Instant::now() > deadline {
            let states: Vec<String> = supervisor
                .ps()
                .iter()
                .map(|r| format!("{} {:?} {}", r.id, r.state, r.last_exit.clone().unwrap_or_default()))
                .collect();
            return Err(failed(format!(
                "the shop did not become healthy (is one of {} taken?): {}",
                ports.describe(),
                states.join("; ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the shop is healthy; logs in {} (while the demo runs; kept only if it fails)",
        work.join("data/logs").display()
    );
    let names = crate::drill::names_in(manager.drills_dir()).unwrap_or_default();
    let drill = match &options.drill {
        Some(d) => d.clone(),
        None if options.auto => AUTO_DRILL.to_owned(),
        None => {
            let runnable: Vec<&String> = names.iter().filter(|n| !n.contains("tabletop")).collect();
            let pick = options.seed.unwrap_or_else(rand::random) as usize % runnable.len().max(1);
            runnable.get(pick).map_or_else(|| AUTO_DRILL.to_owned(), |s| (*s).clone())
        }
    };
    let run_id = manager.start(&drill, "demo", Some("newcomer".into()), options.seed).await.map_err(|e| match e {
        crate::run::manager::ManagerError::BadDrill(_) | crate::run::manager::ManagerError::NoDrill(_) => {
            Failure::BadInput(anyhow!("{e}"))
        }
        other => failed(other),
    })?;
    let remote = Remote { addr: control.to_string(), token: None };
    let view = manager.status(Some(&run_id)).ok().and_then(|v| v.into_iter().next()).and_then(RunView::into_run);
    let briefing = view.as_ref().map(|v| v.briefing.clone()).unwrap_or_default();
    // The drill's name (and the run id, which carries it) would give the diagnosis away: both
    // are printed with the scorecard, when the run ends.
    let due = view.and_then(|v| v.fault_due_ms).map_or_else(String::new, |ms| {
        format!(
            " Traffic is warming up: the fault goes in at {} from now, and nothing counts before it.",
            client::clock(ms)
        )
    });
    println!("\na drill started; synthetic traffic is calling the gateway.{due}\nbriefing: {briefing}\n");
    if options.auto {
        responder(&remote, manager, &run_id).await?;
    } else {
        let (gateway, wallet) = (ports.gateway, ports.wallet);
        println!(
            "You are on call. From a second terminal (the daemon is on its usual addresses):\n\
             \x20 firedrill watch                      # the live view\n\
             \x20 curl -s 127.0.0.1:{gateway}/pay          # what users see; /metrics on every service\n\
             \x20 curl -s 127.0.0.1:8474/metrics       # what firedrill's proxies see\n\
             \x20 firedrill ack                        # \"I see it\"\n\
             \x20 firedrill hint                       # stuck?\n\
             \x20 firedrill diagnose \"what is wrong\"   # name the cause\n\
             \x20 curl -s 127.0.0.1:{wallet}/admin/levers  # the wallet's levers (also the gateway's on :{gateway})\n\
             \x20 firedrill mitigate                   # users are fine again, the fault still in\n\
             \x20 firedrill resolve                    # when you think it is fixed\n\
             Ctrl-C here ends the drill (as aborted) and stops everything.\n"
        );
        println!(
            "Or in a browser: the console at {} (sign in as facilitator; the projector's view),\n\
             and for each responder the link {}\n",
            console.now, console.join
        );
        tokio::select! {
            () = crate::signal::shutdown_signal() => println!("\nCtrl-C: ending the drill"),
            () = wait_for_end(manager, &run_id) => {}
        }
    }
    let _ = manager.abort_all("demo").await;
    wait_for_end(manager, &run_id).await;
    print_scorecard(manager, &run_id);
    Ok(())
}

/// The scripted responder of `--auto`: notices, asks for a hint, guesses wrong once, names the
/// cause, resolves — each through the same control API a person's CLI uses.
async fn responder(remote: &Remote, manager: &Manager, run_id: &str) -> Result<(), Failure> {
    let by = "demo-bot".to_owned();
    // Let the warm-up pass and the fault bite.
    while manager
        .status(Some(run_id))
        .ok()
        .and_then(|v| v.into_iter().next())
        .and_then(RunView::into_run)
        .and_then(|v| v.card)
        .is_none_or(|c| c.faults_applied == 0)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    client::ack(remote, run_id.to_owned(), by.clone()).await?;
    client::hint(remote, run_id.to_owned(), by.clone()).await?;
    client::diagnose(remote, run_id.to_owned(), by.clone(), "the ledger is slow".into()).await?;
    let records = manager.log(run_id).map_err(failed)?.records();
    let Some(crate::journal::event::Event::RunStarted { answer: key, .. }) = records.first().map(|r| r.event.clone())
    else {
        return Err(failed("the run has no start record"));
    };
    client::diagnose(remote, run_id.to_owned(), by.clone(), correct_diagnosis(&key)).await?;
    client::resolve(remote, run_id.to_owned(), by).await
}

async fn wait_for_end(manager: &Manager, run_id: &str) {
    loop {
        let view = manager.status(Some(run_id)).ok().and_then(|v| v.into_iter().next()).and_then(RunView::into_run);
        if view.as_ref().is_none_or(|v| v.scorecard_path.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_scorecard(manager: &Manager, run_id: &str) {
    let Some(view) = manager.status(Some(run_id)).ok().and_then(|v| v.into_iter().next()).and_then(RunView::into_run)
    else {
        return;
    };
    let Some(path) = view.scorecard_path else { return };
    let Ok(text) = std::fs::read_to_string(&path) else { return };
    let Ok(card) = serde_json::from_str::<crate::scorecard::Scorecard>(&text) else { return };
    println!("\nthe drill was `{}`: {}", card.drill, card.title);
    println!("scorecard of {} ({}):", card.run_id, card.drill);
    let outcome = card.outcome.map(crate::wire_name);
    let void = if card.void { " (void: the fault never went in, nothing is scored)" } else { "" };
    println!("  outcome: {}{void}", outcome.unwrap_or_else(|| "open".into()));
    println!("  phase      target   actual   verdict");
    for phase in &card.phases {
        let name = crate::wire_name(phase.phase);
        let verdict = crate::wire_name(phase.verdict);
        println!(
            "  {name:<9} {:>7}  {:>7}   {verdict}",
            client::clock(phase.target_ms),
            phase.actual_ms.map_or_else(|| "-".into(), client::clock)
        );
    }
    let machine = card.detection.machine_ms.map_or_else(|| "-".into(), client::clock);
    let human = card.detection.human_ms.map_or_else(|| "-".into(), client::clock);
    println!(
        "  detected by people at {human}, by alerts at {machine}; wrong diagnoses: {}; hints: {}",
        card.wrong_diagnoses.len(),
        card.hints.len()
    );
    if !card.false_alarms.is_empty() {
        println!("  false alarms (acknowledged before the fault went in): {}", card.false_alarms.len());
    }
    match card.mitigation {
        Some(crate::scorecard::Mitigation::FaultIn) => println!("  mitigated with the fault still in"),
        Some(crate::scorecard::Mitigation::Resolution) => println!("  mitigated only by the resolution"),
        None => {}
    }
    if card.resolved_without_diagnosis {
        println!("  resolved without a matching diagnosis");
    }
    if let Some(budget) = &card.budget {
        println!(
            "  budget: {} of {} requests failed during the impact; in production this response would have burned {:.2}% of the monthly budget (at the dev target {:.2}%, at the production target {:.2}%)",
            budget.bad,
            budget.valid,
            budget.production_share * 100.0,
            budget.at_dev_target_share * 100.0,
            budget.at_production_target_share * 100.0
        );
    }
    for alert in &card.alerts {
        let deadline = client::clock(alert.within_ms);
        let verdict = match (alert.fired_after_ms, alert.met, alert.due) {
            (Some(ms), true, _) => format!("fired after {} (deadline {deadline})", client::clock(ms)),
            (Some(ms), false, _) => format!("fired after {}, late (deadline {deadline})", client::clock(ms)),
            (None, _, true) => format!("never fired (missed; deadline {deadline})"),
            (None, _, false) => format!("not fired yet when the run ended, before its deadline {deadline}: not judged"),
        };
        println!("  expected alert {}: {verdict}", alert.name);
    }
    println!("  full scorecard: {}", path.display());
}
