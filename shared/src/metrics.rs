//! The metrics every function emits: CloudWatch Embedded Metric Format lines printed to stdout
//! in Lambda (CloudWatch turns them into metrics of the `wahooks` namespace without an API call;
//! the template's dashboard and alarms read them). The one place a metric line is made.

use crate::route::Route;

/// The `MisroutedEvents` metric as a CloudWatch Embedded Metric Format line: printed to stdout
/// in Lambda, CloudWatch turns it into a metric (namespace `wahooks`, dimension `Route`)
/// without an API call.
pub fn misrouted_metric(route: Route, event_type: crate::EventType, now_ms: i64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "wahooks",
                "Dimensions": [["Route"]],
                "Metrics": [{"Name": "MisroutedEvents", "Unit": "Count"}],
            }],
        },
        "Route": route.as_str(),
        "EventType": event_type.as_str(),
        "MisroutedEvents": 1,
    })
    .to_string()
}

/// A CloudWatch Embedded Metric Format line: one count of `metric` (namespace `wahooks`) with
/// these dimensions. Printed to stdout in Lambda, CloudWatch turns it into a metric without an
/// API call (the dashboard and alarms of `infra/` read them).
pub fn emf_count(metric: &str, dimensions: &[(&str, &str)], now_ms: i64) -> String {
    emf_counted(metric, dimensions, 1, now_ms)
}

/// [`emf_count`] with a count of `n`.
pub fn emf_counted(metric: &str, dimensions: &[(&str, &str)], n: u64, now_ms: i64) -> String {
    // Published per dimension set and also without dimensions: a CloudWatch alarm matches one
    // exact dimension set, and the template's alarms watch the totals.
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let sets: Vec<Vec<&str>> = if names.is_empty() {
        vec![names]
    } else {
        vec![names, Vec::new()]
    };
    let mut doc = serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "wahooks",
                "Dimensions": sets,
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
    });
    if let Some(map) = doc.as_object_mut() {
        for (k, v) in dimensions {
            map.insert((*k).to_owned(), serde_json::Value::String((*v).to_owned()));
        }
        map.insert(metric.to_owned(), serde_json::json!(n));
    }
    doc.to_string()
}

/// Print a metric line where CloudWatch reads it: stdout, in Lambda only (the local stack and
/// the CLI print their own output there).
pub fn emit_metric(line: impl FnOnce() -> String) {
    static IN_LAMBDA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *IN_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()) {
        println!("{}", line());
    }
}
