//! The server's metrics, in Prometheus' text format at `/metrics`: counted
//! where things happen (requests, store transactions, controller passes,
//! placement failures); levels (index sizes, tasks by status, agents,
//! leadership) read from the view when scraped.
pub mod labels;
pub mod measured_store;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

/// Latency buckets from 100 µs to about 52 s (doubling), for calls, transactions and passes.
fn seconds_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.0001, 2.0, 20).unwrap_or_default()
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    store_transaction_seconds: Histogram,
    store_conflicts: IntCounter,
    store_errors: IntCounter,
    controller_seconds: HistogramVec,
    placement_failures: IntCounterVec,
    index_resources: IntGaugeVec,
    tasks: IntGaugeVec,
    agents_connected: IntGauge,
    leader: IntGauge,
    view_reads: IntCounterVec,
    read_leases_ended: IntCounter,
    operations: labels::Bounded,
}

/// Registers `m` and hands it back (names are fixed here, so registering cannot clash).
fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    registry
        .register(Box::new(m.clone()))
        .expect("each metric is registered once");
    m
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid"),
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(seconds_buckets());
            registered(&r, HistogramVec::new(opts, labels).expect("valid"))
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            registered(
                &r,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid"),
            )
        };
        Metrics {
            requests: counter(
                "berth_api_requests_total",
                "API requests answered, by service, operation and error code (Success when none).",
                &["service", "operation", "code"],
            ),
            request_seconds: histogram(
                "berth_api_request_duration_seconds",
                "Time from a request's arrival to its answer (an agent's Poll includes its wait).",
                &["service", "operation"],
            ),
            store_transaction_seconds: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "berth_store_transaction_duration_seconds",
                        "Time from submitting a store transaction to its outcome.",
                    )
                    .buckets(seconds_buckets()),
                )
                .expect("valid"),
            ),
            store_conflicts: registered(
                &r,
                IntCounter::new(
                    "berth_store_transaction_conflicts_total",
                    "Store transactions not applied because a compare failed (another writer won).",
                )
                .expect("valid"),
            ),
            store_errors: registered(
                &r,
                IntCounter::new(
                    "berth_store_transaction_errors_total",
                    "Store transactions that failed (the store did not answer or refused).",
                )
                .expect("valid"),
            ),
            controller_seconds: histogram(
                "berth_controller_pass_duration_seconds",
                "Time one controller pass took, by controller (the leader runs them).",
                &["controller"],
            ),
            placement_failures: counter(
                "berth_placement_failures_total",
                "Copies of RunTask and StartTask not placed, by the reason in their failures.",
                &["reason"],
            ),
            index_resources: gauge(
                "berth_index_resources",
                "Resources in this server's in-memory view, by kind.",
                &["kind"],
            ),
            tasks: gauge(
                "berth_tasks",
                "Tasks in the view, by last status.",
                &["last_status"],
            ),
            agents_connected: registered(
                &r,
                IntGauge::new(
                    "berth_agents_connected",
                    "Agents (container instances and fleet hosts) heard from by this server within the instance timeout.",
                )
                .expect("valid"),
            ),
            leader: registered(
                &r,
                IntGauge::new(
                    "berth_leader",
                    "1 while this server runs the controllers, else 0.",
                )
                .expect("valid"),
            ),
            view_reads: counter(
                "berth_view_reads_total",
                "Requests on a server sharing its store, by how the view was known to be current: its read lease (`lease`) or a read of the store's revision (`store`).",
                &["through"],
            ),
            read_leases_ended: registered(
                &r,
                IntCounter::new(
                    "berth_read_leases_ended_total",
                    "Other servers' read leases this server ended because their views did not show its write in time.",
                )
                .expect("valid"),
            ),
            registry: r,
            operations: labels::Bounded::new(labels::MAX_OPERATIONS),
        }
    }

    /// One answered API request; `code` is the error code, None for a success.
    pub fn request(
        &self,
        service: &'static str,
        operation: &str,
        code: Option<&str>,
        took: Duration,
    ) {
        let operation = self.operations.admit(service, operation);
        let code = code.unwrap_or("Success");
        self.requests
            .with_label_values(&[service, operation, code])
            .inc();
        self.request_seconds
            .with_label_values(&[service, operation])
            .observe(took.as_secs_f64());
    }

    pub fn store_transaction(&self, took: Duration, outcome: Result<bool, ()>) {
        self.store_transaction_seconds.observe(took.as_secs_f64());
        match outcome {
            Ok(true) => {}
            Ok(false) => self.store_conflicts.inc(),
            Err(()) => self.store_errors.inc(),
        }
    }

    /// Times a controller pass until the returned guard drops.
    pub fn controller_pass(&self, controller: &str) -> prometheus::HistogramTimer {
        self.controller_seconds
            .with_label_values(&[controller])
            .start_timer()
    }

    /// A request's view known current, `through` its read lease or the store.
    pub fn view_read(&self, through: &'static str) {
        self.view_reads.with_label_values(&[through]).inc();
    }

    pub fn read_lease_ended(&self) {
        self.read_leases_ended.inc();
    }

    pub fn placement_failure(&self, reason: &str) {
        self.placement_failures
            .with_label_values(&[labels::placement_reason(reason)])
            .inc();
    }

    /// The metrics in Prometheus' text format, the view's levels read now.
    pub fn render(&self, state: &crate::state::State) -> String {
        {
            let index = state.read();
            for (kind, n) in index.sizes() {
                self.index_resources
                    .with_label_values(&[kind])
                    .set(n as i64);
            }
            let mut by_status = std::collections::HashMap::new();
            for t in index.tasks.values() {
                let status = t.value.summary.last_status.map_or("NONE", |s| s.as_str());
                *by_status.entry(status).or_insert(0i64) += 1;
            }
            for status in berth_model::task_status::TaskStatus::ALL {
                let n = by_status.get(status.as_str()).copied().unwrap_or(0);
                self.tasks.with_label_values(&[status.as_str()]).set(n);
            }
        }
        self.agents_connected.set(state.agents_heard_here() as i64);
        self.leader.set(i64::from(state.leading()));
        let mut out = vec![];
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
