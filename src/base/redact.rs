//! Masking secrets in everything loadmatrix writes or prints.
//!
//! A secret is the value of an `env` variable a template read. Besides its
//! raw bytes, the forms it commonly takes on its way into a log or a report
//! are masked too: percent-encoded (space as `%20` or `+`, hex in either
//! case, `/` encoded or kept), JSON-escaped (with or without `\/` and
//! `\uXXXX` for non-ASCII) and base64 of the value alone (standard and
//! URL-safe alphabets, with or without padding). Not covered: other
//! transformations (upper-casing, slicing, hashing, double encoding) and
//! base64 of a longer text that merely contains the secret (as in HTTP Basic
//! credentials), whose encoding depends on the surrounding bytes.
//!
//! [`StreamRedactor`] applies the same masking to output that arrives in
//! pieces, holding back only a tail that could still grow into a secret, so
//! a secret split across two reads is caught and nothing unmasked is ever
//! handed to a writer.

use std::io::{Read, Write};
use std::sync::Mutex;

/// What a secret is replaced with in outputs.
pub const MASK: &str = "***";

/// Shorter values would mangle ordinary numbers and words in outputs.
pub(crate) const MIN_SECRET_LEN: usize = 3;

/// The secrets of a run and every form of them that is masked.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
    /// Longest first, so a longer form wins over a form that is its prefix.
    patterns: Vec<Vec<u8>>,
    /// Whether some pattern starts with this byte.
    first: Vec<bool>,
}

impl Redactor {
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .iter()
            .map(|s| s.as_ref().to_owned())
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort();
        secrets.dedup();
        let mut patterns: Vec<Vec<u8>> = secrets
            .iter()
            .flat_map(|s| forms(s))
            .filter(|p| p.len() >= MIN_SECRET_LEN)
            .collect();
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        patterns.dedup();
        let mut first = vec![false; 256];
        for p in &patterns {
            first[p[0] as usize] = true;
        }
        Redactor {
            secrets,
            patterns,
            first,
        }
    }

    /// The raw values (to hand to another process that must mask them too).
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        // Every pattern and the mask are whole UTF-8 sequences at ASCII or
        // sequence boundaries, so replacing them keeps the text valid.
        String::from_utf8(self.redact_bytes(text.as_bytes()))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    pub(crate) fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let done = self.scan(bytes, &mut out, true);
        debug_assert_eq!(done, bytes.len());
        out
    }

    /// Masks `bytes` into `out`, returning how far it got: at the end of the
    /// input it stops (unless `last`) where the rest could be the start of a
    /// pattern that the next bytes complete.
    fn scan(&self, bytes: &[u8], out: &mut Vec<u8>, last: bool) -> usize {
        if self.patterns.is_empty() {
            out.extend_from_slice(bytes);
            return bytes.len();
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if self.first[b as usize] {
                let rest = &bytes[i..];
                if let Some(p) = self.patterns.iter().find(|p| rest.starts_with(p)) {
                    out.extend_from_slice(MASK.as_bytes());
                    i += p.len();
                    continue;
                }
                if !last && self.patterns.iter().any(|p| p.starts_with(rest)) {
                    return i;
                }
            }
            out.push(b);
            i += 1;
        }
        i
    }

    pub fn stream(&self) -> StreamRedactor<'_> {
        StreamRedactor {
            redactor: self,
            carry: Vec::new(),
        }
    }
}

/// Masks output that arrives in pieces (a pipe read at a time).
#[derive(Debug)]
pub struct StreamRedactor<'a> {
    redactor: &'a Redactor,
    carry: Vec<u8>,
}

impl StreamRedactor<'_> {
    /// The masked bytes that are safe to write now; a tail that may still
    /// become a secret is kept for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.carry.extend_from_slice(bytes);
        let mut out = Vec::with_capacity(self.carry.len());
        let done = self.redactor.scan(&self.carry, &mut out, false);
        self.carry.drain(..done);
        out
    }

    /// What is left at the end of the stream (it cannot become a secret now).
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.carry);
        self.redactor.redact_bytes(&rest)
    }
}

/// The forms of one secret that are masked.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let raw = secret.as_bytes();
    let mut out = vec![raw.to_vec()];
    for keep_slash in [false, true] {
        for plus in [false, true] {
            for upper in [false, true] {
                out.push(percent_encode(raw, keep_slash, plus, upper).into_bytes());
            }
        }
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json[1..json.len() - 1].to_owned();
    out.push(json.replace('/', "\\/").into_bytes());
    let ascii = json_ascii(&json);
    out.push(ascii.replace('/', "\\/").into_bytes());
    out.push(ascii.into_bytes());
    out.push(json.into_bytes());
    out.extend(html_forms(secret).into_iter().map(String::into_bytes));
    for alphabet in [STANDARD, URL_SAFE] {
        let encoded = base64(raw, alphabet);
        out.push(encoded.trim_end_matches('=').as_bytes().to_vec());
        out.push(encoded.into_bytes());
    }
    out
}

/// The secret as HTML or XML escaping writes it: one spelling per renderer
/// family (minijinja, XML, decimal and upper-case hex entities), and its
/// JSON form with the HTML-unsafe characters as `\uXXXX` (`| tojson`).
fn html_forms(secret: &str) -> Vec<String> {
    const STYLES: [[&str; 3]; 5] = [
        // ', / (kept when empty), " ; & < > are always named entities.
        ["&#x27;", "&#x2f;", "&quot;"],
        ["&#x27;", "", "&quot;"],
        ["&apos;", "", "&quot;"],
        ["&#39;", "&#47;", "&#34;"],
        ["&#x27;", "&#x2F;", "&#x22;"],
    ];
    let mut out = Vec::new();
    for [apos, slash, quot] in STYLES {
        let mut e = String::with_capacity(secret.len() * 2);
        for c in secret.chars() {
            match c {
                '&' => e.push_str("&amp;"),
                '<' => e.push_str("&lt;"),
                '>' => e.push_str("&gt;"),
                '"' => e.push_str(quot),
                '\'' => e.push_str(apos),
                '/' if !slash.is_empty() => e.push_str(slash),
                c => e.push(c),
            }
        }
        out.push(e);
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let mut safe = String::with_capacity(json.len());
    for c in json[1..json.len() - 1].chars() {
        match c {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            '\'' => safe.push_str("\\u0027"),
            c => safe.push(c),
        }
    }
    out.push(safe);
    out
}

fn percent_encode(bytes: &[u8], keep_slash: bool, plus: bool, upper: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            b' ' if plus => out.push('+'),
            _ if upper => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// A JSON string body with non-ASCII characters as `\uXXXX` escapes.
fn json_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Padded base64.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Copies a child's output to `out` as it comes, masked on the way: each
/// read is written at once, except a tail that could be the start of a
/// secret, which waits for the next read. So a writer never holds a secret,
/// even if this process is killed at any moment.
pub(crate) fn pump<W: Write>(mut stream: impl Read, out: &Mutex<W>, redactor: &Redactor) {
    let mut masker = redactor.stream();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let clean = masker.push(&buf[..n]);
        if !clean.is_empty()
            && let Ok(mut f) = out.lock()
        {
            let _ = f.write_all(&clean);
        }
    }
    let rest = masker.finish();
    if let Ok(mut f) = out.lock() {
        let _ = f.write_all(&rest);
        let _ = f.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "Se cr/et+ké";

    #[test]
    fn masks_raw_and_encoded_forms() {
        let r = Redactor::new(&[SENTINEL]);
        for form in [
            SENTINEL,
            "Se%20cr%2Fet%2Bk%C3%A9",
            "Se%20cr%2fet%2bk%c3%a9",
            "Se+cr%2Fet%2Bk%C3%A9",
            "Se+cr/et%2Bk%C3%A9",
            "Se%20cr/et%2bk%c3%a9",
            "Se cr\\/et+k\\u00e9",
            "Se cr/et+k\\u00e9",
            "U2UgY3IvZXQra8Op",
        ] {
            let text = format!("a {form} b");
            assert_eq!(r.redact(&text), "a *** b", "form {form}");
        }
        // Standard and URL-safe base64 differ when the encoding has + or /.
        let r = Redactor::new(&["??>>"]);
        assert_eq!(base64(b"??>>", STANDARD), "Pz8+Pg==");
        for form in ["Pz8+Pg==", "Pz8+Pg", "Pz8-Pg==", "Pz8-Pg"] {
            assert_eq!(r.redact(&format!("x{form}y")), "x***y", "form {form}");
        }
    }

    #[test]
    fn masks_what_minijinja_escaping_writes() {
        let secret = "s3cr/et'<k&y>\"x";
        let r = Redactor::new(&[secret]);
        let env = minijinja::Environment::new();
        for template in ["{{ s | e }}", "{{ s | tojson }}", "{{ s | urlencode }}"] {
            let out = env
                .render_str(template, minijinja::context! { s => secret })
                .unwrap();
            let masked = r.redact(&format!("a {out} b"));
            assert!(
                !masked.contains("cr") && !masked.contains("et"),
                "{template}: {out} -> {masked}"
            );
        }
    }

    #[test]
    fn base64_matches_the_reference() {
        for (plain, encoded) in [
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(plain.as_bytes(), STANDARD), encoded);
        }
    }

    #[test]
    fn short_values_are_not_secrets() {
        let r = Redactor::new(&["ab", ""]);
        assert!(r.is_empty());
        assert_eq!(r.redact("ab cd"), "ab cd");
    }

    #[test]
    fn a_secret_split_across_reads_is_caught() {
        let r = Redactor::new(&["hunter22"]);
        let text = b"login hunter22 ok; pass=hunter2 hunter22\n";
        for cut in 0..text.len() {
            for cut2 in cut..text.len() {
                let mut s = r.stream();
                let mut out = s.push(&text[..cut]);
                out.extend(s.push(&text[cut..cut2]));
                out.extend(s.push(&text[cut2..]));
                out.extend(s.finish());
                assert_eq!(
                    out, b"login *** ok; pass=hunter2 ***\n",
                    "cuts {cut} {cut2}"
                );
            }
        }
    }

    #[test]
    fn only_a_possible_prefix_is_held_back() {
        let r = Redactor::new(&["hunter22"]);
        let mut s = r.stream();
        assert_eq!(s.push(b"line one\nhun"), b"line one\n");
        assert_eq!(s.push(b"gry\n"), b"hungry\n");
    }
}
