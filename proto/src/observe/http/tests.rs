//! The metrics listener's routes, called without a network.

use axum::body::Body;
use prometheus_client::metrics::counter::Counter;
use tower::ServiceExt;

use super::*;

async fn call(endpoint: &Endpoint, path: &str) -> (StatusCode, String) {
    let request = axum::http::Request::get(path)
        .body(Body::empty())
        .expect("a request");
    let response = router(endpoint.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn ready_only_between_start_and_stop() {
    let readiness = Readiness::default();
    let endpoint = Endpoint::new(Arc::new(Registry::default()), readiness.clone());
    let not_yet = (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned());
    assert_eq!(call(&endpoint, "/readyz").await, not_yet);
    assert_eq!(call(&endpoint, "/healthz").await.0, StatusCode::OK);
    readiness.set_ready();
    assert_eq!(
        call(&endpoint, "/readyz").await,
        (StatusCode::OK, "ready\n".to_owned())
    );
    readiness.set_stopping();
    readiness.set_ready();
    let stopping = (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_owned());
    assert_eq!(call(&endpoint, "/readyz").await, stopping);
    assert_eq!(call(&endpoint, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_refreshed_then_encoded() {
    let mut registry = Registry::default();
    let scrapes = Counter::<u64>::default();
    registry.register("scrapes", "Scrapes so far", scrapes.clone());
    let counted = scrapes.clone();
    let endpoint =
        Endpoint::new(Arc::new(registry), Readiness::default()).refresh_with(Arc::new(move || {
            counted.inc();
        }));
    let (status, text) = call(&endpoint, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("scrapes_total 1\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(call(&endpoint, "/other").await.0, StatusCode::NOT_FOUND);
}
