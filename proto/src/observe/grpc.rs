//! A tower layer that counts every gRPC call by method and status code and
//! times it by method. The code is read where gRPC puts it: in the response
//! headers of a trailers-only answer (most errors), else in the trailers at
//! the end of the body; a body dropped before its trailers (the client
//! went away) counts as `Cancelled`. Methods outside the daemon's own
//! descriptor sets count as `unknown`, so a caller cannot grow the label set.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use prost::Message;
use tonic::{
    Code,
    codegen::http::{self, HeaderMap},
};
use tower::{Layer, Service};

/// Labels of a counted call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: String,
}

/// Labels of a timed call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// The gRPC methods a daemon serves, as `/package.Service/Method` paths.
#[derive(Clone, Debug, Default)]
pub struct KnownMethods(HashSet<String>);

impl KnownMethods {
    /// Every method of every service in these encoded descriptor sets.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Self {
        let mut known = HashSet::new();
        for set in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    for method in service.method {
                        let method_name = method.name.unwrap_or_default();
                        known.insert(format!("/{package}.{service_name}/{method_name}"));
                    }
                }
            }
        }
        Self(known)
    }

    /// The label of a request path: itself when known, else `unknown`.
    fn label(&self, path: &str) -> String {
        if self.0.contains(path) {
            path.to_owned()
        } else {
            "unknown".to_owned()
        }
    }
}

/// The gRPC call metrics of one daemon.
#[derive(Clone, Debug)]
pub struct GrpcCalls {
    calls: Family<CallLabels, Counter>,
    durations: Family<MethodLabels, Histogram>,
    known: Arc<KnownMethods>,
}

impl GrpcCalls {
    /// Counts calls of `known` methods by name (others as `unknown`),
    /// registered in `registry` as `slipway_grpc_calls_total{method,code}`
    /// and `slipway_grpc_call_duration_seconds{method}`.
    pub fn register(registry: &mut Registry, known: KnownMethods) -> Self {
        let calls = Family::default();
        let durations = Family::new_with_constructor(call_histogram as fn() -> Histogram);
        registry.register(
            "slipway_grpc_calls",
            "gRPC calls answered, by method and status code",
            calls.clone(),
        );
        registry.register(
            "slipway_grpc_call_duration_seconds",
            "Time from a gRPC call's arrival to its status (a stream's whole life), by method",
            durations.clone(),
        );
        Self {
            calls,
            durations,
            known: Arc::new(known),
        }
    }

    /// The layer that feeds these metrics.
    pub fn layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer(self.clone())
    }
}

fn call_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
    ])
}

/// One call being counted.
struct Tally {
    calls: GrpcCalls,
    method: String,
    started: Instant,
}

impl Tally {
    fn finish(self, code: Code) {
        let code = match code {
            Code::Ok => "OK".to_owned(),
            other => format!("{other:?}"),
        };
        let method = self.method;
        self.calls
            .durations
            .get_or_create(&MethodLabels {
                method: method.clone(),
            })
            .observe(self.started.elapsed().as_secs_f64());
        self.calls
            .calls
            .get_or_create(&CallLabels { method, code })
            .inc();
    }
}

fn status_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(Code::from_i32(value.trim().parse().ok()?))
}

/// Counts the calls of the service it wraps; see [`GrpcCalls::layer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer(GrpcCalls);

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            calls: self.0.clone(),
        }
    }
}

/// A service whose calls are counted.
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
    calls: GrpcCalls,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let tally = Tally {
            calls: self.calls.clone(),
            method: self.calls.known.label(request.uri().path()),
            started: Instant::now(),
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match answer.await {
                Ok(response) => response,
                Err(err) => {
                    tally.finish(Code::Unknown);
                    return Err(err);
                }
            };
            // A trailers-only answer carries its status in the headers.
            let tally = match status_code(response.headers()) {
                Some(code) => {
                    tally.finish(code);
                    None
                }
                None => Some(tally),
            };
            Ok(response.map(|inner| CountedBody { inner, tally }))
        })
    }
}

/// A response body that counts its call when its trailers pass.
pub struct CountedBody<B> {
    inner: B,
    tally: Option<Tally>,
}

impl<B> CountedBody<B> {
    fn finish(&mut self, code: Code) {
        if let Some(tally) = self.tally.take() {
            tally.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    this.finish(code);
                }
            }
            Poll::Ready(Some(Err(_)) | None) => this.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        // Dropped before its status was sent: the client went away.
        self.finish(Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_described_methods_are_labelled_by_name() {
        let known = KnownMethods::from_descriptor_sets(&[crate::FILE_DESCRIPTOR_SET]);
        let path = "/slipway.control.v1.AppService/ListApps";
        assert_eq!(known.label(path), path);
        assert_eq!(
            known.label("/slipway.control.v1.AppService/Nope"),
            "unknown"
        );
        assert_eq!(known.label("/x/../y"), "unknown");
    }

    #[test]
    fn the_status_is_read_from_headers_or_trailers() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(status_code(&headers), Some(Code::NotFound));
    }
}
