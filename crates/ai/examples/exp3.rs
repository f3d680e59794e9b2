use smart_ticket_ai::retrieval::{Centering, Doc, Mode, evaluate};
fn strip(text: &str) -> String {
    let greet = [
        "dear",
        "hello",
        "hi",
        "greetings",
        "good day",
        "sincerely",
        "best regards",
        "regards",
        "thank you",
        "thanks",
        "kind regards",
        "best,",
        "best",
    ];
    text.lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .filter(|l| {
            let low = l.to_lowercase();
            let short = l.split_whitespace().count() <= 4;
            !(short && greet.iter().any(|g| low.starts_with(g))) && !(l.starts_with('<') && l.ends_with('>'))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
fn main() -> anyhow::Result<()> {
    let (rows, _) = smart_ticket_ai::eval::load_jsonl(std::path::Path::new("/tmp/en.jsonl"), "group", None)?;
    let m = smart_ticket_ai::e5::E5::load(std::path::Path::new("/work/main/models/multilingual-e5-small"))?;
    let texts: Vec<String> = rows.iter().map(|r| strip(&r.text)).collect();
    eprintln!("{}\n----\n{}", rows[0].text, texts[0]);
    let vs: Vec<Vec<f32>> = texts.iter().map(|t| m.embed(t).unwrap()).collect();
    let langs: Vec<_> = texts.iter().map(|t| smart_ticket_ai::lang::detect(t)).collect();
    let c = Centering::fit_towards(Some(m.seed_centering()), langs.iter().zip(&vs).map(|(l, v)| (*l, v.as_slice())));
    let docs: Vec<Doc> = rows
        .iter()
        .zip(&texts)
        .zip(vs.iter().zip(&langs))
        .map(|((r, t), (v, l))| Doc::new(t, r.labels.join("|"), Some(c.apply(*l, v))))
        .collect();
    let docs_full: Vec<Doc> = rows
        .iter()
        .zip(vs.iter().zip(&langs))
        .map(|(r, (v, l))| Doc::new(&r.text, r.labels.join("|"), Some(c.apply(*l, v))))
        .collect();
    for mo in [Mode::Semantic, Mode::Lexical, Mode::Hybrid] {
        println!("stripped {mo:?} {:.4}", evaluate(&docs, None, mo).mrr);
        println!("stripped-emb full-lex {mo:?} {:.4}", evaluate(&docs_full, None, mo).mrr);
    }
    Ok(())
}
