//! Token counts a response reports: the OpenAI `usage` object's
//! `prompt_tokens` and `completion_tokens`, found as the body streams by
//! (the last chunk of a stream, or a whole JSON body), keeping a few bytes
//! of state and none of the body. Whitespace between tokens is ignored.

use super::http1::BodySink;

/// Finds a fixed byte string, ignoring ASCII whitespace in the input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seek {
    pat: &'static [u8],
    at: usize,
}

impl Seek {
    pub const fn new(pat: &'static [u8]) -> Self {
        Seek { pat, at: 0 }
    }

    /// Feeds one byte; true when it completes the string.
    pub(crate) fn feed(&mut self, b: u8) -> bool {
        if b.is_ascii_whitespace() {
            return false;
        }
        if self.pat[self.at] == b {
            self.at += 1;
        } else {
            // The strings sought repeat no prefix but their first byte.
            self.at = usize::from(self.pat[0] == b);
        }
        if self.at == self.pat.len() {
            self.at = 0;
            return true;
        }
        false
    }
}

/// A `"key": <integer>` pair; the last one in the body wins.
#[derive(Debug, Clone, Copy)]
struct Field {
    key: Seek,
    /// The key matched: digits follow.
    after: bool,
    reading: Option<u64>,
    value: Option<u64>,
}

impl Field {
    const fn new(key: &'static [u8]) -> Self {
        Field {
            key: Seek::new(key),
            after: false,
            reading: None,
            value: None,
        }
    }

    fn feed(&mut self, b: u8) {
        if let Some(v) = self.reading {
            if b.is_ascii_digit() {
                self.reading = Some(v.saturating_mul(10).saturating_add(u64::from(b - b'0')));
                return;
            }
            self.value = Some(v);
            self.reading = None;
        }
        if self.after && !b.is_ascii_whitespace() {
            self.after = false;
            if b.is_ascii_digit() {
                self.reading = Some(u64::from(b - b'0'));
                return;
            }
        }
        if self.key.feed(b) {
            self.after = true;
        }
    }

    fn get(&self) -> Option<u64> {
        self.reading.or(self.value)
    }
}

/// Reads `usage` out of a response body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UsageScan {
    prompt: Field,
    completion: Field,
}

impl Default for UsageScan {
    fn default() -> Self {
        UsageScan {
            prompt: Field::new(b"\"prompt_tokens\":"),
            completion: Field::new(b"\"completion_tokens\":"),
        }
    }
}

impl UsageScan {
    pub(crate) fn feed(&mut self, b: u8) {
        self.prompt.feed(b);
        self.completion.feed(b);
    }

    /// (input, output) tokens, when the body reported its completion tokens.
    pub fn usage(&self) -> Option<(u64, u64)> {
        let output = self.completion.get()?;
        Some((self.prompt.get().unwrap_or(0), output))
    }
}

impl BodySink for UsageScan {
    fn data(&mut self, bytes: &[u8], _chunked: bool) {
        for &b in bytes {
            self.feed(b);
        }
    }

    fn chunk_end(&mut self) {}
}

/// What one response said of its tokens: its `usage`, and the events a
/// streamed response delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub usage: Option<(u64, u64)>,
    pub events: u64,
}

/// Reads a non-streamed response for `usage` when its request asks for it.
pub(crate) enum Reader {
    Skip,
    Usage(UsageScan),
}

impl Reader {
    pub fn new(read: bool) -> Self {
        if read {
            Reader::Usage(UsageScan::default())
        } else {
            Reader::Skip
        }
    }

    pub fn seen(&self) -> Option<Seen> {
        match self {
            Reader::Skip => None,
            Reader::Usage(u) => Some(Seen {
                usage: u.usage(),
                events: 0,
            }),
        }
    }
}

impl BodySink for Reader {
    fn data(&mut self, bytes: &[u8], chunked: bool) {
        if let Reader::Usage(u) = self {
            u.data(bytes, chunked);
        }
    }

    fn chunk_end(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(pieces: &[&[u8]]) -> Option<(u64, u64)> {
        let mut u = UsageScan::default();
        for p in pieces {
            u.data(p, false);
        }
        u.usage()
    }

    #[test]
    fn usage_is_found_in_any_split_and_spacing() {
        let body: &[u8] = br#"{"choices":[],"usage": {"prompt_tokens" : 123, "prompt_tokens_details": null, "completion_tokens":45,"total_tokens":168}}"#;
        assert_eq!(scan(&[body]), Some((123, 45)));
        for cut in 0..body.len() {
            assert_eq!(
                scan(&[&body[..cut], &body[cut..]]),
                Some((123, 45)),
                "cut {cut}"
            );
        }
        assert_eq!(scan(&[b"data: {\"text\": \"no usage\"}\n\n"]), None);
        // The last report wins; a body ending in the number counts it.
        assert_eq!(
            scan(&[b"{\"completion_tokens\":1} {\"completion_tokens\":17"]),
            Some((0, 17))
        );
    }

    #[test]
    fn seek_restarts_on_its_first_byte() {
        let mut s = Seek::new(b"\"choices\":[]");
        let hits = b"\"\"choices\": [ ]".iter().filter(|&&b| s.feed(b)).count();
        assert_eq!(hits, 1);
    }
}
