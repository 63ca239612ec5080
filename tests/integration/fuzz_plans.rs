//! Property test over plan parsing, validation and template rendering: plans
//! assembled from the plan language's own keys and values, wrong types,
//! unknown keys, templates and junk; none may panic. proptest keeps the inputs
//! it ever failed on in proptest-regressions/, and every file in
//! tests/fuzz-corpus/ is replayed on each run.

use std::collections::BTreeMap;
use std::path::Path;

use loadmatrix::plan::template::EnvVars;
use loadmatrix::plan::{self, LoadOptions, PlanError};
use proptest::prelude::*;

fn validate(text: &str) {
    let options = LoadOptions {
        env: Some(EnvVars::from_map(BTreeMap::from([(
            "TOKEN".to_string(),
            "t0ken".to_string(),
        )]))),
        ..Default::default()
    };
    match plan::load_str(Path::new("fuzz.toml"), text, options) {
        Ok(_) => {}
        Err(PlanError::Invalid(diags)) => {
            assert!(!diags.is_empty());
            for d in diags {
                let _ = d.render();
            }
        }
        Err(e) => panic!("{e}"),
    }
}

const SECTIONS: &[(&str, &[&str])] = &[
    (
        "cell",
        &["duration", "warmup", "cooldown", "repeat", "durtion"],
    ),
    (
        "system",
        &[
            "backend", "replicas", "command", "ready", "docker", "compose",
        ],
    ),
    (
        "load",
        &[
            "engine",
            "base_url",
            "users",
            "rate",
            "spawn_rate",
            "workers",
            "think_time",
            "timeout",
            "max_in_flight",
            "stages",
            "locustfile",
        ],
    ),
    (
        "matrix",
        &["users", "replicas", "workers", "include", "exclude", "mode"],
    ),
    ("vars", &["lb", "x"]),
    ("analysis", &["slo", "cost"]),
];

const ARRAYS: &[(&str, &[&str])] = &[
    (
        "load.request",
        &[
            "name", "method", "path", "weight", "headers", "body", "expect",
        ],
    ),
    (
        "check",
        &["name", "http", "disk", "command", "docker", "timeout"],
    ),
    ("threshold", &["expr", "where", "scope", "abort"]),
    (
        "step",
        &[
            "id",
            "uses",
            "run",
            "needs",
            "before",
            "per_cell",
            "on_failure",
            "duration",
        ],
    ),
    ("report", &["template", "output"]),
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-5i64..2000).prop_map(|n| n.to_string()),
        (0.0f64..5000.0).prop_map(|x| format!("{x:.2}")),
        Just("true".to_string()),
        prop::sample::select(vec![
            "\"2m\"",
            "\"1.5s\"",
            "\"250ms\"",
            "\"0s\"",
            "\"10\"",
            "\"1GiB\"",
            "\"1%\"",
            "\"0.5s..1s\"",
            "\"local\"",
            "\"native\"",
            "\"locust\"",
            "\"POST\"",
            "\"/predict\"",
            "\"http://127.0.0.1:9\"",
            "\"{{ matrix.users }}\"",
            "\"{{ matrix.user }}\"",
            "\"{{ vars.lb }}\"",
            "\"{{ env.TOKEN }}\"",
            "\"{{ env.NOPE }}\"",
            "\"{{ 1 / 0 }}\"",
            "\"{% for x in y %}\"",
            "\"p95 < 500ms\"",
            "\"max(rps) >= 100\"",
            "\"users <= 400\"",
            "\"(((\"",
            "\"exec\"",
            "\"scale\"",
            "\"cell\"",
            "\"run\"",
            "[]",
            "[1, 2, 4]",
            "[\"a\", \"b\"]",
            "[1, \"x\", true]",
            "{ status = 200 }",
            "{ p95 = \"500ms\" }",
            "{ url = \"http://127.0.0.1:9/h\" }",
            "{ path = \".\", min_free = \"1KiB\" }",
            "[{ users = 1 }]",
            "[\"scale\", \"nope\"]",
            "{}",
            "\"é\u{1F600}\"",
        ])
        .prop_map(str::to_string),
    ]
}

fn table_lines(keys: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(keys.to_vec(), 0..=keys.len().min(6)).prop_flat_map(|ks| {
        ks.into_iter()
            .map(|k| value().prop_map(move |v| format!("{k} = {v}")))
            .collect::<Vec<_>>()
    })
}

fn plan_text() -> impl Strategy<Value = String> {
    // Each table at most once, as TOML requires; keys may still repeat (a
    // duplicate-key error is part of what is exercised).
    let sections =
        prop::sample::subsequence(SECTIONS.to_vec(), 0..=SECTIONS.len()).prop_flat_map(|chosen| {
            chosen
                .into_iter()
                .map(|(name, keys)| table_lines(keys).prop_map(move |l| (name, l)))
                .collect::<Vec<_>>()
        });
    let arrays = prop::collection::vec(
        prop::sample::select(ARRAYS)
            .prop_flat_map(|(name, keys)| table_lines(keys).prop_map(move |l| (name, l))),
        0..5,
    );
    (
        prop::option::of(prop::sample::select(vec!["\"fuzz\"", "\"Bad Name\"", "3"])),
        sections,
        arrays,
    )
        .prop_map(|(name, sections, arrays)| {
            let mut out = String::new();
            if let Some(n) = name {
                out.push_str(&format!("name = {n}\n"));
            }
            for (s, lines) in sections {
                out.push_str(&format!("[{s}]\n{}\n", lines.join("\n")));
            }
            for (a, lines) in arrays {
                out.push_str(&format!("[[{a}]]\n{}\n", lines.join("\n")));
            }
            out
        })
}

proptest! {
    // Bounded for CI; raise with PROPTEST_CASES=100000 for a long hunt.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
    ))]

    #[test]
    fn generated_plans_never_panic(text in plan_text()) {
        validate(&text);
    }

    #[test]
    fn most_generated_plans_get_past_toml_syntax(text in plan_text()) {
        // Keeps the generator honest: it must reach validation, not only the TOML parser.
        prop_assert!(text.parse::<toml::Table>().is_ok(), "{}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        validate(&text);
    }
}

#[test]
fn the_corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        validate(&std::fs::read_to_string(e.path()).unwrap());
        n += 1;
    }
    assert!(n > 0);
}
