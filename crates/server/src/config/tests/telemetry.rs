//! The `OTEL_*` variables of the trace export.

use super::*;

#[test]
fn traces_are_off_unless_an_otlp_endpoint_is_configured() {
    let enabled = |extra: &[(&str, &str)]| {
        CoreConfig::from_env(&core_env(extra))
            .unwrap()
            .common
            .traces
            .enabled
    };
    assert!(!enabled(&[]));
    assert!(enabled(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://collector:4318"
    )]));
    assert!(enabled(&[(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "https://collector.example/v1/traces"
    )]));
    assert!(
        enabled(&[("OTEL_TRACES_EXPORTER", "otlp")]),
        "the default endpoint"
    );
    assert!(!enabled(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]));
    assert!(!enabled(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_SDK_DISABLED", "true"),
    ]));
    assert!(enabled(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]));

    let refused = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "ftp://collector/v1/traces",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_TRACES_EXPORTER", "jaeger"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_SDK_DISABLED", "maybe"),
    ];
    for (variable, value) in refused {
        let problems = CoreConfig::from_env(&core_env(&[(variable, value)])).unwrap_err();
        assert_eq!(variables(&problems), [variable], "{variable}={value}");
        let problems = ManagementConfig::from_env(&management_env(&[(variable, value)]));
        assert_eq!(
            variables(&problems.unwrap_err()),
            [variable],
            "the management runtime too: {variable}={value}"
        );
    }
    let problems = CoreConfig::from_env(&core_env(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
    ]))
    .unwrap_err();
    assert_eq!(variables(&problems), ["OTEL_TRACES_SAMPLER_ARG"]);
}
