//! OpenAI-style text and chat completions with closed-form timing.
//!
//! A prompt's tokens are its whitespace-separated words. Prefill costs
//! `prefill_time` per word not found in the prefix cache; the cache holds
//! `prefix_cache` blocks of [`BLOCK_WORDS`] words, least recently used out,
//! keyed by the block's words and everything before them (as vLLM's
//! automatic prefix caching keys a block by its whole prefix). Only whole
//! blocks are cached, and blocks enter the cache when their prefill starts.
//! So the first token comes `first_token + uncached_words * prefill_time`
//! after the slot is granted, and every further one `token_time` later.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{DEFAULT_MAX_TOKENS, DemoBody, MAX_BODY_BYTES, MAX_TOKENS, Server, TOKEN};

/// Words per prefix-cache block.
pub(crate) const BLOCK_WORDS: usize = 512;

/// Which API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    Completions,
    Chat,
}

/// Least-recently-used whole blocks of prompt words, by content.
#[derive(Debug, Default)]
pub(super) struct PrefixCache {
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    capacity: usize,
    clock: u64,
    /// Block key -> last use.
    used: HashMap<u64, u64>,
    /// Last use -> block key: the oldest first.
    order: BTreeMap<u64, u64>,
}

impl PrefixCache {
    pub(super) fn new(capacity: usize) -> Self {
        PrefixCache {
            inner: Mutex::new(Lru {
                capacity,
                ..Lru::default()
            }),
        }
    }

    /// Words of `words` whose prefill the cache does not spare: every word
    /// after the first block that was not cached. Caches the prompt's whole
    /// blocks.
    pub(super) fn uncached(&self, words: &[&str]) -> usize {
        let mut lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if lru.capacity == 0 {
            return words.len();
        }
        let mut hasher = DefaultHasher::new();
        let mut hits = 0;
        let mut missed = false;
        for block in words.chunks_exact(BLOCK_WORDS) {
            block.hash(&mut hasher);
            let key = hasher.finish();
            if lru.touch(key) {
                if !missed {
                    hits += 1;
                }
            } else {
                missed = true;
                lru.insert(key);
            }
        }
        words.len() - hits * BLOCK_WORDS
    }
}

impl Lru {
    fn touch(&mut self, key: u64) -> bool {
        self.clock += 1;
        let now = self.clock;
        match self.used.get_mut(&key) {
            Some(at) => {
                self.order.remove(at);
                *at = now;
                self.order.insert(now, key);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: u64) {
        while self.used.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.used.remove(&oldest);
        }
        self.used.insert(key, self.clock);
        self.order.insert(self.clock, key);
    }
}

/// What a completion request asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ask {
    pub prompt_words: usize,
    pub uncached_words: usize,
    pub max_tokens: u64,
    pub stream: bool,
    pub include_usage: bool,
    pub model: String,
}

/// The prompt's text: `prompt` (a string or strings) for completions, the
/// messages' contents (strings or text parts) for chat.
fn prompt_text(api: Api, request: &Value) -> String {
    fn text_of(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push(' ');
                out.push_str(s);
            }
            Value::Array(items) => items.iter().for_each(|i| text_of(i, out)),
            Value::Object(part) => {
                if let Some(t) = part.get("text") {
                    text_of(t, out);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    match api {
        Api::Completions => {
            if let Some(p) = request.get("prompt") {
                text_of(p, &mut out);
            }
        }
        Api::Chat => {
            for m in request
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(c) = m.get("content") {
                    text_of(c, &mut out);
                }
            }
        }
    }
    out
}

/// Reads a request: `Err` is a 400's message.
pub(super) fn parse(api: Api, body: &[u8], cache: &PrefixCache) -> Result<Ask, String> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let max_tokens = match request
        .get("max_tokens")
        .or_else(|| request.get("max_completion_tokens"))
    {
        None | Some(Value::Null) => DEFAULT_MAX_TOKENS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_TOKENS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "max_tokens must be an integer from 1 to {MAX_TOKENS}"
                ));
            }
        },
    };
    if api == Api::Chat && !request.get("messages").is_some_and(Value::is_array) {
        return Err("chat completions need a `messages` array".into());
    }
    let text = prompt_text(api, &request);
    let words: Vec<&str> = text.split_whitespace().collect();
    let flag = |v: Option<&Value>| v.and_then(Value::as_bool).unwrap_or(false);
    Ok(Ask {
        prompt_words: words.len(),
        uncached_words: 0,
        max_tokens,
        stream: flag(request.get("stream")),
        include_usage: flag(
            request
                .get("stream_options")
                .and_then(|o| o.get("include_usage")),
        ),
        model: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("demo")
            .to_owned(),
    })
    .map(|mut ask| {
        ask.uncached_words = cache.uncached(&words);
        ask
    })
}

fn usage(ask: &Ask) -> Value {
    json!({"prompt_tokens": ask.prompt_words, "completion_tokens": ask.max_tokens,
           "total_tokens": ask.prompt_words as u64 + ask.max_tokens})
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// One streamed token's event; `last` carries the finish reason.
fn token_event(api: Api, id: &str, model: &str, last: bool) -> Bytes {
    let finish = if last { json!("length") } else { Value::Null };
    let value = match api {
        Api::Completions => json!({"id": id, "object": "text_completion", "created": 0,
            "model": model,
            "choices": [{"index": 0, "text": TOKEN, "finish_reason": finish}]}),
        Api::Chat => json!({"id": id, "object": "chat.completion.chunk", "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": TOKEN},
                         "finish_reason": finish}]}),
    };
    sse(&value)
}

fn whole(api: Api, id: &str, ask: &Ask, replica: usize) -> Value {
    let text = TOKEN.repeat(usize::try_from(ask.max_tokens).unwrap_or(usize::MAX));
    match api {
        Api::Completions => json!({"id": id, "object": "text_completion", "created": 0,
            "model": ask.model, "replica": replica,
            "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
            "usage": usage(ask)}),
        Api::Chat => json!({"id": id, "object": "chat.completion", "created": 0,
            "model": ask.model, "replica": replica,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "length"}],
            "usage": usage(ask)}),
    }
}

impl Server {
    /// When token `k` (from 0) is ready, counted from the start of prefill.
    fn token_at(&self, uncached_words: usize, k: u64) -> Duration {
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        let words = u32::try_from(uncached_words).unwrap_or(u32::MAX);
        self.config
            .prefill_time
            .saturating_mul(words)
            .saturating_add(self.config.first_token)
            .saturating_add(self.config.token_time.saturating_mul(k))
    }

    /// `POST /v1/completions` and `/v1/chat/completions`: `max_tokens`
    /// tokens (default 16); with `"stream": true` each is sent as it is
    /// generated, as an SSE `data:` line (`chunks`: a bare HTTP chunk), then
    /// the usage when `stream_options.include_usage`, then `data: [DONE]`.
    /// The slot is held until the last token, also while the client reads.
    pub(super) async fn complete(
        self: Arc<Self>,
        api: Api,
        body: Incoming,
        chunks: bool,
    ) -> Response<DemoBody> {
        let arrived = Instant::now();
        let full = |r: Response<Full<Bytes>>| r.map(DemoBody::Full);
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                return full(self.reject(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read request body: {error}"),
                ));
            }
        };
        let ask = match parse(api, &body, &self.prefix) {
            Ok(ask) => ask,
            Err(message) => return full(self.reject(StatusCode::BAD_REQUEST, message)),
        };
        let n = self
            .next_request
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = match api {
            Api::Completions => format!("cmpl-{n}"),
            Api::Chat => format!("chatcmpl-{n}"),
        };
        if !ask.stream {
            let Some(_permit) = self.generation_slot().await else {
                return full(self.reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server is shutting down".to_owned(),
                ));
            };
            let _serving = self.metrics.in_service();
            let started = tokio::time::Instant::now();
            let end = self.token_at(ask.uncached_words, ask.max_tokens - 1);
            tokio::time::sleep_until(started + end).await;
            self.metrics.observe_first_token(arrived.elapsed());
            self.metrics.count_tokens(ask.max_tokens);
            self.metrics.count_request(200);
            self.metrics.observe_duration(arrived.elapsed());
            let value = whole(api, &id, &ask, self.config.replica);
            return full(super::json_response(StatusCode::OK, &value));
        }
        // Small: the generator waits for a slow reader rather than buffering.
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        tokio::spawn(async move {
            let Some(_permit) = self.generation_slot().await else {
                return;
            };
            let _serving = self.metrics.in_service();
            let started = tokio::time::Instant::now();
            let (token, last) = if chunks {
                let t = Bytes::from_static(TOKEN.as_bytes());
                (t.clone(), t)
            } else {
                (
                    token_event(api, &id, &ask.model, false),
                    token_event(api, &id, &ask.model, true),
                )
            };
            for k in 0..ask.max_tokens {
                tokio::time::sleep_until(started + self.token_at(ask.uncached_words, k)).await;
                if k == 0 {
                    self.metrics.observe_first_token(arrived.elapsed());
                }
                let piece = if k + 1 == ask.max_tokens {
                    last.clone()
                } else {
                    token.clone()
                };
                if tx.send(piece).await.is_err() {
                    // The client went away: stop generating, free the slot.
                    return;
                }
                self.metrics.count_tokens(1);
            }
            if !chunks {
                if ask.include_usage {
                    let object = match api {
                        Api::Completions => "text_completion",
                        Api::Chat => "chat.completion.chunk",
                    };
                    let value = json!({"id": id, "object": object, "created": 0,
                        "model": ask.model, "choices": [], "usage": usage(&ask)});
                    let _ = tx.send(sse(&value)).await;
                }
                let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
            }
            self.metrics.count_request(200);
            self.metrics.observe_duration(arrived.elapsed());
        });
        let content_type = if chunks {
            "text/plain; charset=utf-8"
        } else {
            "text/event-stream"
        };
        let mut response = Response::new(DemoBody::Stream(rx));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, tag: &str) -> Vec<String> {
        (0..n).map(|i| format!("{tag}{i}")).collect()
    }

    #[test]
    fn the_cache_spares_leading_whole_blocks_only() {
        let cache = PrefixCache::new(4);
        let a = words(2 * BLOCK_WORDS + 100, "a");
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_eq!(cache.uncached(&a), a.len(), "cold");
        assert_eq!(cache.uncached(&a), 100, "two whole blocks cached");
        // Same first block, different second: only the first is spared.
        let mut b: Vec<&str> = a[..BLOCK_WORDS].to_vec();
        let tail = words(BLOCK_WORDS, "b");
        b.extend(tail.iter().map(String::as_str));
        assert_eq!(cache.uncached(&b), BLOCK_WORDS);
        // A different first block spares nothing, even with a cached second.
        let mut c: Vec<&str> = tail.iter().map(String::as_str).collect();
        c.extend(&a[BLOCK_WORDS..2 * BLOCK_WORDS]);
        assert_eq!(cache.uncached(&c), c.len());
    }

    #[test]
    fn the_least_recently_used_block_goes_first() {
        let cache = PrefixCache::new(2);
        let blocks: Vec<Vec<String>> = (0..3)
            .map(|k| words(BLOCK_WORDS, &format!("{k}_")))
            .collect();
        let view = |k: usize| -> Vec<&str> { blocks[k].iter().map(String::as_str).collect() };
        cache.uncached(&view(0));
        cache.uncached(&view(1));
        assert_eq!(
            cache.uncached(&view(0)),
            0,
            "0 is cached and now the newest"
        );
        cache.uncached(&view(2)); // evicts 1
        assert_eq!(cache.uncached(&view(0)), 0);
        assert_eq!(cache.uncached(&view(1)), BLOCK_WORDS);
        let none = PrefixCache::new(0);
        assert_eq!(none.uncached(&view(0)), BLOCK_WORDS);
        assert_eq!(none.uncached(&view(0)), BLOCK_WORDS);
    }

    #[test]
    fn requests_count_prompt_words_and_read_their_options() {
        let cache = PrefixCache::new(0);
        let chat = br#"{"model": "m", "max_tokens": 7, "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "be  brief"},
                         {"role": "user", "content": [{"type": "text", "text": "one two three"}]}]}"#;
        let ask = parse(Api::Chat, chat, &cache).unwrap();
        assert_eq!(
            ask,
            Ask {
                prompt_words: 5,
                uncached_words: 5,
                max_tokens: 7,
                stream: true,
                include_usage: true,
                model: "m".into()
            }
        );
        let ask = parse(Api::Completions, br#"{"prompt": "a b"}"#, &cache).unwrap();
        assert_eq!(
            (ask.prompt_words, ask.max_tokens, ask.stream),
            (2, 16, false)
        );
        assert!(parse(Api::Chat, br#"{"prompt": "a"}"#, &cache).is_err());
        assert!(parse(Api::Completions, br#"{"max_tokens": 0}"#, &cache).is_err());
    }
}
