//! `/metrics` as Prometheus reads it: parsed as OpenMetrics text, its counters and histograms
//! match the traffic sent; and the Grafana dashboard and the alert rules only query series
//! that flowgate serves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openmetrics_parser::{
    MetricsExposition, OpenMetricsMetricFamily, OpenMetricsType, OpenMetricsValue,
};
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

/// One parsed scrape of `/metrics`.
struct Scrape(MetricsExposition<OpenMetricsType, OpenMetricsValue>);

async fn scrape(app: &TestApp) -> Scrape {
    let response = reqwest::get(format!("{}/metrics", app.admin_address))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("/metrics is not valid OpenMetrics ({e:?}):\n{text}"));
    Scrape(parsed)
}

impl Scrape {
    fn family(&self, name: &str) -> &OpenMetricsMetricFamily {
        self.0
            .families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name}; have {:?}", self.0.families.keys()))
    }

    /// The value of the sample whose labels are exactly `labels`, if there is one.
    fn value(&self, family: &str, labels: &[(&str, &str)]) -> Option<OpenMetricsValue> {
        let family = self.family(family);
        family
            .iter_samples()
            .find(|sample| {
                let set = sample.get_labelset().unwrap();
                set.iter().count() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|sample| sample.value.clone())
    }

    /// A counter's total (0 when the series does not exist yet).
    fn counter(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        assert_eq!(self.family(family).family_type, OpenMetricsType::Counter);
        match self.value(family, labels) {
            Some(OpenMetricsValue::Counter(c)) => c.value.as_f64(),
            None => 0.0,
            Some(other) => panic!("{family} is not a counter: {other:?}"),
        }
    }

    /// The sum of a counter's series whose labels include `labels` (0 for a family that has
    /// no series yet: the exposition leaves it out).
    fn counter_sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        let Some(family) = self.0.families.get(family) else {
            return 0.0;
        };
        family
            .iter_samples()
            .filter(|sample| {
                let set = sample.get_labelset().unwrap();
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|sample| match &sample.value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                other => panic!("{} is not a counter: {other:?}", family.family_name),
            })
            .sum()
    }

    /// A histogram's observation count; its `+Inf` bucket must agree.
    fn histogram_count(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        assert_eq!(self.family(family).family_type, OpenMetricsType::Histogram);
        match self.value(family, labels) {
            Some(OpenMetricsValue::Histogram(h)) => {
                let count = h.count.unwrap();
                let inf = h.buckets.iter().find(|b| b.upper_bound.is_infinite());
                assert_eq!(
                    inf.map(|b| b.count.as_f64()),
                    Some(count as f64),
                    "{family}{labels:?}: the +Inf bucket holds every observation"
                );
                assert!(
                    h.buckets
                        .windows(2)
                        .all(|w| w[0].count.as_f64() <= w[1].count.as_f64()),
                    "{family}{labels:?}: buckets are cumulative"
                );
                count
            }
            None => 0,
            Some(other) => panic!("{family} is not a histogram: {other:?}"),
        }
    }

    /// Every series name a query may select, with the label names it carries.
    fn series(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut series = BTreeMap::new();
        for (name, family) in &self.0.families {
            let labels: BTreeSet<String> = family.get_label_names().iter().cloned().collect();
            let suffixes: &[&str] = match family.family_type {
                OpenMetricsType::Counter => &["_total"],
                OpenMetricsType::Histogram => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                let mut labels = labels.clone();
                if *suffix == "_bucket" {
                    labels.insert("le".into());
                }
                series.insert(format!("{name}{suffix}"), labels);
            }
        }
        series
    }
}

#[tokio::test]
async fn counters_and_histograms_match_the_requests_sent() {
    const ACCEPTED: usize = 5;
    const INVALID: usize = 3;
    const UNKNOWN: usize = 2;
    // One deployment lookup (expected by the mock): every later one is a cache hit.
    let prefect = happy_prefect(1).await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    for i in 0..ACCEPTED {
        let response = app
            .post_json(ROUTE, &signup(&format!("jo{i}@example.com")))
            .await;
        assert_eq!(response.status().as_u16(), 202);
        let body: Value = response.json().await.unwrap();
        // One request at a time to an idle, fast Prefect: each gets its synchronous attempt.
        assert_eq!(body["status"], "created", "{body}");
    }
    for _ in 0..INVALID {
        let mut bad = signup("jo@example.com");
        bad["assessment_score"] = json!(101);
        problem(app.post_json(ROUTE, &bad).await, 422, "validation_failed").await;
    }
    for _ in 0..UNKNOWN {
        problem(
            app.post_json("no-such-route", &signup("jo@example.com"))
                .await,
            404,
            "unknown_route",
        )
        .await;
    }

    let m = scrape(&app).await;
    let requests = "flowgate_requests";
    assert_eq!(
        m.counter(requests, &[("route", ROUTE), ("code", "created")]),
        ACCEPTED as f64
    );
    assert_eq!(
        m.counter(requests, &[("route", ROUTE), ("code", "validation_failed")]),
        INVALID as f64
    );
    assert_eq!(
        m.counter(requests, &[("route", "-"), ("code", "unknown_route")]),
        UNKNOWN as f64,
        "an unknown route is counted under -, never under the path it named"
    );
    assert_eq!(
        m.counter_sum(requests, &[]),
        (ACCEPTED + INVALID + UNKNOWN) as f64,
        "nothing else was answered before this scrape"
    );

    let rejections = "flowgate_rejections";
    assert_eq!(
        m.counter(
            rejections,
            &[("route", ROUTE), ("code", "validation_failed")]
        ),
        INVALID as f64
    );
    assert_eq!(
        m.counter(rejections, &[("route", "-"), ("code", "unknown_route")]),
        UNKNOWN as f64
    );
    assert_eq!(
        m.counter_sum(rejections, &[]),
        (INVALID + UNKNOWN) as f64,
        "accepted requests are no rejections"
    );

    let latency = "flowgate_request_duration_seconds";
    assert_eq!(
        m.histogram_count(latency, &[("route", ROUTE)]),
        (ACCEPTED + INVALID) as u64
    );
    assert_eq!(
        m.histogram_count(latency, &[("route", "-")]),
        UNKNOWN as u64
    );
    assert!(
        m.value(latency, &[("route", "no-such-route")]).is_none(),
        "no series for a path that names no route"
    );

    let hits = m.counter("flowgate_deployment_cache_hits", &[]);
    let misses = m.counter("flowgate_deployment_cache_misses", &[]);
    assert_eq!(misses, 1.0, "the first lookup");
    assert_eq!(hits, (ACCEPTED - 1) as f64, "every later one");

    let calls = "flowgate_prefect_requests";
    let create = [("call", "create_flow_run"), ("outcome", "ok")];
    assert_eq!(m.counter(calls, &create), ACCEPTED as f64);
    assert_eq!(
        m.counter_sum(calls, &[("call", "create_flow_run")]),
        ACCEPTED as f64,
        "no create failed"
    );
    assert_eq!(
        m.counter(calls, &[("call", "read_deployment"), ("outcome", "ok")]),
        1.0
    );
    let call_latency = "flowgate_prefect_request_duration_seconds";
    assert_eq!(
        m.histogram_count(call_latency, &[("call", "create_flow_run")]),
        ACCEPTED as u64
    );
    assert_eq!(
        m.histogram_count(call_latency, &[("call", "read_deployment")]),
        1
    );

    // Nothing went through the outbox; every outcome is served, at 0.
    let outcomes = "flowgate_delivery_attempts";
    for outcome in [
        "delivered",
        "busy",
        "overloaded",
        "unreachable",
        "missing",
        "failing",
        "refused",
        "dead",
    ] {
        assert!(
            m.value(outcomes, &[("outcome", outcome)]).is_some(),
            "{outcome} is served before it happens"
        );
    }
    assert_eq!(m.counter_sum(outcomes, &[]), 0.0);
    assert_eq!(m.counter("flowgate_outbox_attempts", &[]), 0.0);

    // The scrape itself is a request too, answered without a route.
    let again = scrape(&app).await;
    assert_eq!(
        again.histogram_count(latency, &[("route", "-")]),
        UNKNOWN as u64 + 1
    );
}

#[tokio::test]
async fn a_queued_request_is_counted_by_prefect_outcome_and_delivery_outcome() {
    let prefect = happy_prefect(1).await;
    // The synchronous attempt meets a 503; the deliverer's attempt is served.
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&prefect)
        .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued", "{body}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = scrape(&app).await;
        // The attempt is counted when Prefect answers, the delivery once the store committed it.
        if m.counter("flowgate_delivery_attempts", &[("outcome", "delivered")]) >= 1.0
            && m.counter("flowgate_outbox_delivered", &[]) >= 1.0
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the queued request was not delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let outcomes = "flowgate_delivery_attempts";
    assert_eq!(m.counter(outcomes, &[("outcome", "delivered")]), 1.0);
    assert_eq!(
        m.counter_sum(outcomes, &[]),
        1.0,
        "the request's own attempt is no delivery attempt"
    );
    assert_eq!(m.counter("flowgate_outbox_attempts", &[]), 1.0);
    assert_eq!(m.counter("flowgate_outbox_delivered", &[]), 1.0);
    let calls = "flowgate_prefect_requests";
    assert_eq!(
        m.counter(
            calls,
            &[("call", "create_flow_run"), ("outcome", "overloaded")]
        ),
        1.0
    );
    assert_eq!(
        m.counter(calls, &[("call", "create_flow_run"), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        m.counter("flowgate_requests", &[("route", ROUTE), ("code", "queued")]),
        1.0
    );
    assert_eq!(m.counter_sum("flowgate_rejections", &[]), 0.0);
}

/// Metric selectors in a PromQL expression: each metric name with the label names it matches
/// on. Functions, aggregations, keywords, grouping labels, durations, strings and dashboard
/// variables are skipped.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "offset", "bool", "atan2", "inf", "nan",
    ];
    let c: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_ws = |mut i: usize| {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        i
    };
    // The index just past the bracket that closes the one at `i`, strings skipped.
    let close = |mut i: usize, open: char, shut: char| {
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '"' | '\'' | '`' => {
                    let q = c[i];
                    i += 1;
                    while i < c.len() && c[i] != q {
                        i += if c[i] == '\\' { 2 } else { 1 };
                    }
                }
                x if x == open => depth += 1,
                x if x == shut => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        panic!("unbalanced {open} in {expr}");
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = close_quote(&c, i),
            '[' => i = close(i, '[', ']'),
            '{' => i = close(i, '{', '}'),
            '$' => {
                i += 1;
                if c.get(i) == Some(&'{') {
                    i = close(i, '{', '}');
                }
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
            }
            x if x.is_ascii_digit() || x == '.' => {
                while i < c.len() && (ident(c[i]) || c[i] == '.') {
                    i += 1;
                }
            }
            x if x.is_ascii_alphabetic() || x == '_' || x == ':' => {
                let start = i;
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
                let name: String = c[start..i].iter().collect();
                let next = skip_ws(i);
                if GROUPING.contains(&name.as_str()) {
                    if c.get(next) == Some(&'(') {
                        i = close(next, '(', ')');
                    }
                } else if KEYWORDS.contains(&name.as_str())
                    || AGGREGATIONS.contains(&name.as_str())
                    || c.get(next) == Some(&'(')
                {
                    // A keyword, an aggregation or a function call.
                } else {
                    let mut labels = Vec::new();
                    if c.get(next) == Some(&'{') {
                        let end = close(next, '{', '}');
                        let mut j = next + 1;
                        while j < end - 1 {
                            j = skip_ws(j);
                            if c[j] == ',' {
                                j += 1;
                                continue;
                            }
                            let from = j;
                            while j < end && ident(c[j]) {
                                j += 1;
                            }
                            assert!(j > from, "a label name at {j} in {expr}");
                            labels.push(c[from..j].iter().collect());
                            j = skip_ws(j);
                            while matches!(c[j], '=' | '!' | '~') {
                                j += 1;
                            }
                            j = close_quote(&c, skip_ws(j));
                            j = skip_ws(j);
                        }
                        i = end;
                    }
                    found.push((name, labels));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// The index just past the string that starts at `i`.
fn close_quote(c: &[char], mut i: usize) -> usize {
    let q = c[i];
    assert!(matches!(q, '"' | '\'' | '`'), "a string at {i}");
    i += 1;
    while i < c.len() && c[i] != q {
        i += if c[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

#[test]
fn promql_selectors_are_found_and_the_rest_skipped() {
    let found = selectors(
        r#"histogram_quantile(0.95, sum by (route, le) (rate(flowgate_request_duration_seconds_bucket{instance=~"$instance", route!="a,b}"}[$__rate_interval])))
           / on (instance) group_left sum without (code) (flowgate_x_total offset 5m) > 2 * up and bool 1e3"#,
    );
    assert_eq!(
        found,
        [
            (
                "flowgate_request_duration_seconds_bucket".to_string(),
                vec!["instance".to_string(), "route".to_string()]
            ),
            ("flowgate_x_total".to_string(), vec![]),
            ("up".to_string(), vec![]),
        ]
    );
}

/// Prometheus adds these to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Checks that `expr` selects only served series (or `up`) by labels they carry; returns the
/// metric names it selects.
fn check_expr(what: &str, expr: &str, served: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let found = selectors(expr);
    assert!(!found.is_empty(), "{what}: no metric in {expr}");
    for (name, labels) in &found {
        if name == "up" {
            continue;
        }
        let Some(carried) = served.get(name) else {
            panic!("{what}: {name} is not served by /metrics (in {expr})");
        };
        for label in labels {
            assert!(
                carried.contains(label) || TARGET_LABELS.contains(&label.as_str()),
                "{what}: {name} has no label {label} (in {expr})"
            );
        }
    }
    found.into_iter().map(|(name, _)| name).collect()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    rules: Vec<AlertRule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    pending: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// Every `expr` in the dashboard's panels and variables, with where it is.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap();
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {title}"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            exprs.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap();
        // label_values(selector, label): the selector is a query of its own.
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _)| selector)
            .unwrap_or(query);
        exprs.push((
            format!("variable {}", variable["name"]),
            selector.to_owned(),
        ));
    }
    exprs
}

#[tokio::test]
async fn dashboard_and_alert_rules_query_only_served_metrics() {
    // Prefect refuses every create: the request waits in the outbox, so the per-route outbox
    // gauge has a series too. (A family with no series is left out of the exposition.)
    let prefect = happy_prefect(1).await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&prefect)
        .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    // One of each answer, so every labelled family has a series to show its labels.
    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "queued");
    assert_eq!(
        app.post_json(ROUTE, &json!({})).await.status().as_u16(),
        422
    );
    let served = scrape(&app).await.series();

    let text =
        std::fs::read_to_string(repo_path("config/grafana/flowgate-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    assert!(
        dashboard["__inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "the datasource is an input chosen at import"
    );
    let ids: Vec<u64> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "panel ids are unique"
    );
    let mut charted = BTreeSet::new();
    for (what, expr) in dashboard_exprs(&dashboard) {
        charted.extend(check_expr(&what, &expr, &served));
    }
    for wanted in [
        "flowgate_requests_total",
        "flowgate_rejections_total",
        "flowgate_request_duration_seconds_bucket",
        "flowgate_prefect_request_duration_seconds_bucket",
        "flowgate_prefect_requests_total",
        "flowgate_deployment_cache_hits_total",
        "flowgate_deployment_cache_misses_total",
        "flowgate_outbox_queued",
        "flowgate_outbox_oldest_age_seconds",
        "flowgate_outbox_dead",
        "flowgate_delivery_attempts_total",
        "flowgate_outbox_drain_rate",
        "flowgate_prefect_concurrency_limit",
    ] {
        assert!(charted.contains(wanted), "the dashboard charts {wanted}");
    }

    let text = std::fs::read_to_string(repo_path("config/prometheus/flowgate-alerts.yml")).unwrap();
    let rules: RuleFile = serde_norway::from_str(&text).expect("the alert rules are valid");
    let mut alerted = BTreeSet::new();
    let mut names = BTreeSet::new();
    for group in &rules.groups {
        assert!(!group.name.is_empty());
        assert!(group.interval.as_deref().is_none_or(|i| !i.is_empty()));
        for rule in &group.rules {
            assert!(names.insert(rule.alert.clone()), "{} twice", rule.alert);
            let severity = rule.labels.get("severity").map(String::as_str);
            assert!(
                matches!(severity, Some("critical" | "warning" | "info")),
                "{}: severity {severity:?}",
                rule.alert
            );
            for annotation in ["summary", "description"] {
                assert!(
                    rule.annotations
                        .get(annotation)
                        .is_some_and(|a| !a.trim().is_empty()),
                    "{}: no {annotation}",
                    rule.alert
                );
            }
            assert!(rule.pending.as_deref().is_none_or(|f| !f.is_empty()));
            alerted.extend(check_expr(&rule.alert, &rule.expr, &served));
        }
    }
    for wanted in [
        "up",
        "flowgate_outbox_oldest_age_seconds",
        "flowgate_outbox_dead",
        "flowgate_rejections_total",
        "flowgate_prefect_requests_total",
        "flowgate_breaker_open",
    ] {
        assert!(alerted.contains(wanted), "an alert watches {wanted}");
    }
}
