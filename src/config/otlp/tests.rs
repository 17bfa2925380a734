use super::*;

fn check(yaml: &str, vars: &[(&str, &str)]) -> Result<Option<ValidOtlp>, Vec<String>> {
    let cfg: OtlpConfig = serde_yaml::from_str(yaml).expect("yaml");
    let env = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let mut problems = Vec::new();
    let v = validate(&cfg, &env, Path::new("."), &mut problems);
    if problems.is_empty() {
        Ok(v)
    } else {
        Err(problems.into_iter().map(|p| p.message).collect())
    }
}

#[test]
fn off_unless_enabled_by_the_file_or_the_environment() {
    assert!(check("{}", &[]).expect("valid").is_none());
    let on = check("{}", &[("OTEL_METRICS_EXPORTER", "otlp")]).expect("valid");
    let on = on.expect("enabled");
    assert_eq!(on.endpoint, "http://localhost:4317/");
    assert_eq!(on.protocol, Protocol::Grpc);
    assert_eq!(on.interval, DEFAULT_INTERVAL);
    assert!(
        check("enabled: false", &[("OTEL_METRICS_EXPORTER", "otlp")])
            .expect("valid")
            .is_none()
    );
}

#[test]
fn the_file_wins_over_the_environment_and_metrics_variables_over_general_ones() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1500"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=x%20y"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "3000"),
        ("OTEL_RESOURCE_ATTRIBUTES", "env=prod,service.name=ignored"),
        ("OTEL_SERVICE_NAME", "edge"),
    ];
    let v = check("enabled: true", &vars).expect("valid").expect("on");
    assert_eq!(v.endpoint, "http://general:4318/v1/metrics");
    assert_eq!(v.protocol, Protocol::HttpProtobuf);
    assert_eq!(v.timeout, Duration::from_millis(1500));
    assert_eq!(v.interval, Duration::from_secs(3));
    assert!(v.gzip);
    let headers: Vec<(&str, &str)> = v
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("?")))
        .collect();
    assert_eq!(headers, [("a", "1"), ("b", "x y")]);
    assert!(v.resource.contains(&("service.name".into(), "edge".into())));
    assert!(v.resource.contains(&("env".into(), "prod".into())));

    let v = check(
        "enabled: true\nendpoint: http://file:4317\nprotocol: grpc\ntimeout: 4s\nheaders: {x-a: b}",
        &vars,
    )
    .expect("valid")
    .expect("on");
    assert_eq!(v.endpoint, "http://file:4317/");
    assert_eq!(v.protocol, Protocol::Grpc);
    assert_eq!(v.timeout, Duration::from_secs(4));
    assert_eq!(v.headers.len(), 1);

    let v = check(
        "enabled: true",
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/custom"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
        ],
    )
    .expect("valid")
    .expect("on");
    assert_eq!(v.endpoint, "http://m:1/custom", "used as it is");
}

#[test]
fn endpoints_get_a_scheme_and_a_path() {
    let ep = |yaml: &str| {
        check(&format!("enabled: true\n{yaml}"), &[])
            .expect("valid")
            .expect("on")
            .endpoint
            .to_string()
    };
    assert_eq!(ep("endpoint: collector:4317"), "https://collector:4317/");
    assert_eq!(
        ep("endpoint: collector:4317\ninsecure: true"),
        "http://collector:4317/"
    );
    assert_eq!(
        ep("endpoint: http://c:4318\nprotocol: http/protobuf"),
        "http://c:4318/v1/metrics"
    );
    assert_eq!(
        ep("endpoint: http://c:4318/otlp/v1/metrics\nprotocol: http"),
        "http://c:4318/otlp/v1/metrics"
    );
    assert_eq!(
        ep("protocol: http/protobuf"),
        "http://localhost:4318/v1/metrics"
    );
}

#[test]
fn bad_settings_are_named() {
    let errs = |yaml: &str, vars: &[(&str, &str)]| {
        check(&format!("enabled: true\n{yaml}"), vars).expect_err("invalid")
    };
    assert!(errs("endpoint: ftp://x", &[])[0].contains("expected http://"));
    assert!(
        errs("", &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])[0]
            .contains("OTEL_EXPORTER_OTLP_PROTOCOL")
    );
    assert!(errs("", &[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")])[0].contains("milliseconds"));
    assert!(errs("headers: {\"bad name\": x}", &[])[0].contains("not a valid header name"));
    assert!(errs("headers: {a: \"x\\ny\"}", &[])[0].contains("cannot carry"));
    assert!(
        errs("headers: {a: \"${DOCKSTAT_UNSET_VAR_FOR_TEST}\"}", &[])[0].contains("is not set")
    );
    assert!(errs("tls: {ca: /nonexistent/ca.pem}", &[])[0].contains("does not exist"));
    assert!(
        errs("endpoint: http://x:1\ntls: {ca: Cargo.toml}", &[])
            .iter()
            .any(|e| e.contains("no PEM certificate") || e.contains("https:// endpoints"))
    );
}
