//! Which language a ticket is written in, from its commonest small words: enough to tell English, German,
//! Spanish, French and Portuguese apart (the languages a multilingual helpdesk meets first), and to say
//! "not sure" rather than guess on a few words.
//!
//! Retrieval uses it to take out of each sentence vector what it has in common with every other ticket in
//! the same language (see [`crate::retrieval::Centering`]): multilingual embeddings place texts of one
//! language near each other whatever they say, and without that correction a German ticket's nearest
//! neighbours are other German tickets rather than its Spanish twin.

/// Languages told apart, by ISO 639-1 code.
pub const LANGUAGES: [&str; 5] = ["en", "de", "es", "fr", "pt"];

/// Function words by language (lowercase). Words several languages share count for each.
const WORDS: [&[&str]; 5] = [
    &[
        "the", "and", "to", "of", "is", "are", "we", "our", "you", "your", "for", "with", "this", "that", "it", "have",
        "has", "be", "not", "please", "can", "on", "from", "i", "my", "an", "in", "was", "would", "there",
    ],
    &[
        "der", "die", "das", "und", "ist", "nicht", "wir", "unser", "unsere", "unseren", "sie", "ihr", "ihre", "ihnen",
        "mit", "für", "bei", "auf", "ein", "eine", "einen", "einem", "dem", "den", "des", "zu", "von", "bitte",
        "haben", "wurde", "sind", "ich", "es", "werden", "auch", "sehr", "geehrte", "geehrtes",
    ],
    &[
        "el",
        "la",
        "los",
        "las",
        "y",
        "de",
        "del",
        "que",
        "en",
        "un",
        "una",
        "es",
        "por",
        "para",
        "con",
        "nuestro",
        "nuestra",
        "nuestros",
        "se",
        "no",
        "hemos",
        "estamos",
        "su",
        "al",
        "lo",
        "como",
        "muy",
        "pero",
        "está",
        "ayuda",
        "gracias",
        "estimado",
        "estimados",
    ],
    &[
        "le", "la", "les", "et", "de", "des", "du", "un", "une", "est", "pour", "avec", "nous", "notre", "nos", "vous",
        "votre", "vos", "que", "qui", "dans", "sur", "pas", "ne", "au", "aux", "ce", "cette", "sont", "avons", "merci",
    ],
    &[
        "o",
        "a",
        "os",
        "as",
        "e",
        "de",
        "do",
        "da",
        "dos",
        "das",
        "um",
        "uma",
        "é",
        "para",
        "com",
        "nós",
        "nosso",
        "nossa",
        "nossos",
        "não",
        "em",
        "no",
        "na",
        "que",
        "por",
        "estamos",
        "seu",
        "sua",
        "você",
        "obrigado",
        "atenciosamente",
        "prezado",
        "prezada",
    ],
];

/// The known language code spelled `code` (as stored), if it is one of [`LANGUAGES`].
pub fn known(code: Option<&str>) -> Option<&'static str> {
    code.and_then(|c| LANGUAGES.iter().find(|l| **l == c).copied())
}

/// The language of a ticket reading `text`: the one stored for it (`stored`), else what its words tell.
pub fn of(stored: Option<&str>, text: &str) -> Option<&'static str> {
    known(stored).or_else(|| detect(text))
}

/// The language of `text`, when its small words say so clearly: at least three of them, and the winner ahead
/// of the runner-up by a quarter. `None` for short or mixed texts.
pub fn detect(text: &str) -> Option<&'static str> {
    let mut counts = [0usize; LANGUAGES.len()];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty() && w.len() <= 14) {
        let word = word.to_lowercase();
        for (count, words) in counts.iter_mut().zip(WORDS) {
            if words.contains(&word.as_str()) {
                *count += 1;
            }
        }
    }
    let mut ranked: Vec<(usize, usize)> = counts.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (best, top) = ranked[0];
    let second = ranked[1].1;
    (top >= 3 && top * 4 >= second * 5 && top > second).then_some(LANGUAGES[best])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_five_languages_apart() {
        let cases = [
            ("en", "We are facing a critical problem with our project management tool. Please help us."),
            ("de", "Wir haben ein Problem mit dem Drucker und bitten um Ihre Unterstützung bei der Lösung."),
            ("es", "Estimado equipo, tenemos un problema con la impresora y necesitamos ayuda para resolverlo."),
            ("fr", "Nous avons un problème avec notre imprimante et nous vous prions de nous aider."),
            ("pt", "Prezada equipe, estamos com um problema na impressora e precisamos de ajuda com isso."),
        ];
        for (want, text) in cases {
            assert_eq!(detect(text), Some(want), "{text}");
        }
    }

    #[test]
    fn is_unsure_on_few_words() {
        assert_eq!(detect("VPN down"), None);
        assert_eq!(detect(""), None);
        assert_eq!(detect("12345 !!!"), None);
    }
}
