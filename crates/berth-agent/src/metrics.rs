//! The agent's metrics, in Prometheus' text format on `--metrics-listen`:
//! Docker calls timed as they happen; containers by state and the reports
//! not yet acknowledged read when scraped.
use crate::reports::Reports;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use std::sync::Arc;

pub struct AgentMetrics {
    registry: prometheus::Registry,
    docker_seconds: HistogramVec,
    docker_errors: IntCounterVec,
    containers: IntGaugeVec,
    reports_unsent: IntGauge,
}

fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &prometheus::Registry,
    m: M,
) -> M {
    registry
        .register(Box::new(m.clone()))
        .expect("each metric is registered once");
    m
}

/// The container states ECS reports, each always present in the output.
const CONTAINER_STATES: [&str; 3] = ["PENDING", "RUNNING", "STOPPED"];

impl Default for AgentMetrics {
    fn default() -> Self {
        let r = prometheus::Registry::new();
        let buckets = prometheus::exponential_buckets(0.0001, 2.0, 20).unwrap_or_default();
        AgentMetrics {
            docker_seconds: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "berth_agent_docker_request_duration_seconds",
                        "Time the Docker Engine took to answer the agent, by operation.",
                    )
                    .buckets(buckets),
                    &["operation"],
                )
                .expect("valid"),
            ),
            docker_errors: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "berth_agent_docker_request_errors_total",
                        "Docker Engine calls that failed, by operation.",
                    ),
                    &["operation"],
                )
                .expect("valid"),
            ),
            containers: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "berth_agent_containers",
                        "Containers of this agent's tasks, by the last state it reported.",
                    ),
                    &["state"],
                )
                .expect("valid"),
            ),
            reports_unsent: registered(
                &r,
                IntGauge::new(
                    "berth_agent_reports_unsent",
                    "Task state changes observed and not yet acknowledged by a server.",
                )
                .expect("valid"),
            ),
            registry: r,
        }
    }
}

impl AgentMetrics {
    /// Runs one Docker call, timing it (and counting it when it fails).
    pub async fn docker<T, E>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let timer = self
            .docker_seconds
            .with_label_values(&[operation])
            .start_timer();
        let result = call.await;
        drop(timer);
        if result.is_err() {
            self.docker_errors.with_label_values(&[operation]).inc();
        }
        result
    }

    /// Times a Docker call that answers no error (a lookup that may find nothing).
    pub async fn docker_lookup<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        let _timer = self
            .docker_seconds
            .with_label_values(&[operation])
            .start_timer();
        call.await
    }

    pub fn render(&self, reports: &Reports) -> String {
        let counts = reports.container_states();
        for state in CONTAINER_STATES {
            let n = counts.get(state).copied().unwrap_or(0);
            self.containers.with_label_values(&[state]).set(n as i64);
        }
        self.reports_unsent.set(reports.unsent() as i64);
        let mut out = vec![];
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Serves `/metrics` on `listener` until the agent stops.
pub fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<AgentMetrics>,
    shared: Arc<crate::runner::Shared>,
) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            let text = metrics.render(&shared.reports);
            (
                [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                text,
            )
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
}
