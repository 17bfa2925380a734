//! Runs an axum app on a bound listener, over plain HTTP or TLS (rustls), until a shutdown
//! token fires; then gives open connections (a followed log stream, say) a few seconds and
//! stops regardless.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tokio_util::sync::CancellationToken;

/// How long open connections may take to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);

/// Loads a listener certificate chain and key (PEM).
pub async fn tls_config(cert: &Path, key: &Path) -> std::io::Result<RustlsConfig> {
    // bollard and the listeners share one rustls; pick its ring provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    RustlsConfig::from_pem_file(cert, key).await
}

/// Serves `app` on `listener` until `stop` fires (plus at most [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<RustlsConfig>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    match tls {
        None => {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let graceful = stop.clone();
            let server = axum::serve(listener, app)
                .with_graceful_shutdown(async move { graceful.cancelled().await });
            drain(server.into_future(), stop).await
        }
        Some(cfg) => {
            let handle = axum_server::Handle::new();
            let server = axum_server::from_tcp_rustls(listener, cfg)?
                .handle(handle.clone())
                .serve(app.into_make_service());
            let h = handle.clone();
            let s = stop.clone();
            tokio::spawn(async move {
                s.cancelled().await;
                h.graceful_shutdown(Some(DRAIN));
            });
            drain(server, stop).await
        }
    }
}

async fn drain(
    server: impl Future<Output = std::io::Result<()>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r,
        _ = async { stop.cancelled().await; tokio::time::sleep(DRAIN).await } => Ok(()),
    }
}
