//! The gRPC control API: responders' verbs and the facilitator's view, served by the daemon.

pub mod proto;
pub mod service;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::gameday::Gamedays;

/// The control API's default address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8475";

/// Serves the control API on `listener` until `shutdown`; with a token, every call must carry
/// `authorization: Bearer <token>`.
pub async fn serve(
    listener: TcpListener,
    gamedays: Arc<Gamedays>,
    token: Option<String>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let service = proto::control_server::ControlServer::with_interceptor(
        service::ControlService::new(gamedays),
        move |request: tonic::Request<()>| {
            let Some(token) = &token else { return Ok(request) };
            let given = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if crate::bearer_matches(given, token) {
                Ok(request)
            } else {
                Err(tonic::Status::unauthenticated("missing or wrong token (FIREDRILL_TOKEN)"))
            }
        },
    );
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        )
        .await
}
