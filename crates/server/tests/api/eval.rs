//! `smart-ticket eval classify` end to end on small files it is given.

use std::io::Write;

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_smart-ticket")).args(args).output().unwrap()
}

fn fixture(rows: &[(&str, &str)]) -> tempfile_path::TempPath {
    let path = std::env::temp_dir().join(format!("eval-{}.jsonl", uuid::Uuid::new_v4().simple()));
    let mut f = std::fs::File::create(&path).unwrap();
    for (i, (text, label)) in rows.iter().enumerate() {
        writeln!(
            f,
            "{}",
            serde_json::json!({ "subject": "", "body": text, "label": label, "group": format!("g{}", i / 2) })
        )
        .unwrap();
    }
    tempfile_path::TempPath(path)
}

mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

const ROWS: [(&str, &str); 12] = [
    ("the printer is jammed", "hardware"),
    ("printer paper jam again", "hardware"),
    ("my laptop screen is broken", "hardware"),
    ("laptop screen flickers", "hardware"),
    ("vpn keeps disconnecting", "network"),
    ("cannot reach the vpn", "network"),
    ("wifi drops in room 4", "network"),
    ("no wifi signal in room 4", "network"),
    ("invoice shows the wrong amount", "billing"),
    ("please refund the invoice", "billing"),
    ("charged twice this month", "billing"),
    ("double charge on my card", "billing"),
];

#[test]
fn eval_classify_prints_a_json_report_as_its_last_line() {
    let train = fixture(&ROWS);
    let test =
        fixture(&[("printer jammed", "hardware"), ("vpn disconnecting", "network"), ("refund invoice", "billing")]);
    let out = run(&[
        "eval",
        "classify",
        "--train",
        train.0.to_str().unwrap(),
        "--test",
        test.0.to_str().unwrap(),
        "--label",
        "label",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for key in [
        "label",
        "n_train",
        "n_test",
        "accuracy",
        "macro_f1",
        "train_seconds",
        "ms_per_ticket_p50",
        "ms_per_ticket_p99",
        "engine",
    ] {
        assert!(report.get(key).is_some(), "missing {key}: {report}");
    }
    assert_eq!((report["n_train"].as_u64(), report["n_test"].as_u64()), (Some(12), Some(3)));
    assert!(report["accuracy"].as_f64().unwrap() >= 2.0 / 3.0, "{report}");

    let out = run(&[
        "eval",
        "classify",
        "--train",
        train.0.to_str().unwrap(),
        "--label",
        "label",
        "--cv",
        "3",
        "--group",
        "group",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!((report["n_test"].as_u64(), report["folds"].as_u64()), (Some(12), Some(3)));

    let missing = run(&["eval", "classify", "--train", train.0.to_str().unwrap(), "--label", "nope", "--cv", "3"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains(":1: no `nope` label"));
}

/// A fake OpenAI-compatible server that labels by keyword, answering in the Chat Completions format.
struct KeywordModel;

impl wiremock::Respond for KeywordModel {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let prompt = body["messages"][1]["content"].as_str().unwrap_or("");
        let ticket = &prompt[prompt.rfind("<ticket>").unwrap_or(0)..];
        let category = if ticket.contains("printer") {
            "hardware"
        } else if ticket.contains("vpn") {
            "network"
        } else {
            "billing"
        };
        let content = serde_json::json!({ "category": category, "category_confidence": 0.9, "priority": "medium",
                                          "priority_confidence": 0.5, "skills": [] });
        wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content.to_string() }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 100, "completion_tokens": 20 }
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_classify_can_ask_a_provider_instead() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/chat/completions"))
        .and(wiremock::matchers::header("authorization", "Bearer k"))
        .respond_with(KeywordModel)
        .expect(3)
        .mount(&server)
        .await;
    let train = fixture(&ROWS);
    let test =
        fixture(&[("printer jammed", "hardware"), ("vpn disconnecting", "network"), ("refund invoice", "billing")]);
    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_smart-ticket"))
            .args(["eval", "classify", "--train", train.0.to_str().unwrap(), "--test", test.0.to_str().unwrap()])
            .args(["--label", "label", "--provider", "openai"])
            .env("OPENAI_BASE_URL", uri)
            .env("OPENAI_API_KEY", "k")
            .env("OPENAI_MODEL", "fake-model")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(report["engine"], "openai:fake-model", "{report}");
    assert_eq!((report["n_test"].as_u64(), report["accuracy"].as_f64()), (Some(3), Some(1.0)), "{report}");
}
