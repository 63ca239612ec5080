//! Values that remember where they were written, and typed fields that may be
//! written as a literal or as a template rendered per cell.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A value with its byte range in the plan file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sp<T> {
    pub(crate) value: T,
    pub(crate) span: Range<usize>,
}

impl<T> Sp<T> {
    pub(crate) fn new(value: T, span: Range<usize>) -> Self {
        Sp { value, span }
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<T>::deserialize(d)?;
        let span = spanned.span();
        Ok(Sp {
            value: spanned.into_inner(),
            span,
        })
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// A TOML scalar as written, before templates are rendered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

pub(crate) fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a string or a boolean")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("integer is too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// Why a (rendered) scalar is not the typed value its field wants. Its text
/// is what the user reads after the field's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum FieldError {
    #[error("expected true or false, found {0}")]
    NotBool(Scalar),
    #[error("expected a whole number, found {0}")]
    NotWhole(Scalar),
    #[error("expected a whole number >= 0, found {0}")]
    NegativeWhole(i64),
    #[error("expected a number, found {0}")]
    NotNumber(Scalar),
    #[error("expected a number >= 0, found {0}")]
    NotNonNegative(f64),
    /// A number where a unit value must be written as a string.
    #[error("expected {what} as a string like \"{example}\", found {found}")]
    NotString {
        what: &'static str,
        example: &'static str,
        found: Scalar,
    },
    #[error(transparent)]
    Unit(#[from] crate::base::units::UnitError),
    /// Not one of a keyword field's words; `found` as written (a string in
    /// quotes), `hint` the nearest word.
    #[error("expected one of {}, found {found}{}", quote_list(.expected), .hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    NotKeyword {
        expected: &'static [&'static str],
        found: String,
        hint: Option<String>,
    },
}

/// A kind of typed plan value: how to read it from a (rendered) scalar and how
/// its literal form looks in the JSON Schema.
pub(crate) trait FieldKind: Sized {
    fn parse(value: &Scalar) -> Result<Self, FieldError>;
    fn literal_schema() -> Schema;
}

/// A typed field that is either a literal or a template rendering to one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tmpl<T> {
    pub(crate) raw: Scalar,
    pub(crate) span: Range<usize>,
    kind: PhantomData<fn() -> T>,
}

impl<T> Tmpl<T> {
    pub(crate) fn literal(raw: Scalar) -> Self {
        Tmpl {
            raw,
            span: 0..0,
            kind: PhantomData,
        }
    }

    /// Whether the value was written in the plan (defaults have an empty span).
    pub(crate) fn is_written(&self) -> bool {
        !self.span.is_empty()
    }
}

impl<'de, T> Deserialize<'de> for Tmpl<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<Scalar>::deserialize(d)?;
        let span = spanned.span();
        Ok(Tmpl {
            raw: spanned.into_inner(),
            span,
            kind: PhantomData,
        })
    }
}

impl<T: FieldKind> JsonSchema for Tmpl<T> {
    fn schema_name() -> Cow<'static, str> {
        "Templated".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                T::literal_schema(),
                { "type": "string", "pattern": TEMPLATE_PATTERN, "description": "a minijinja template rendering to the value" }
            ]
        })
    }
}

pub(crate) const TEMPLATE_PATTERN: &str = r"\{[{%]";

/// Plain strings: every string field may hold a template.
pub(crate) type Text = Tmpl<String>;

impl FieldKind for String {
    fn parse(value: &Scalar) -> Result<Self, FieldError> {
        match value {
            Scalar::Str(s) => Ok(s.clone()),
            Scalar::Int(_) | Scalar::Float(_) | Scalar::Bool(_) => Ok(value.to_string()),
        }
    }
    fn literal_schema() -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

impl FieldKind for bool {
    fn parse(value: &Scalar) -> Result<Self, FieldError> {
        match value {
            Scalar::Bool(b) => Ok(*b),
            Scalar::Str(s) if s.trim() == "true" => Ok(true),
            Scalar::Str(s) if s.trim() == "false" => Ok(false),
            other => Err(FieldError::NotBool(other.clone())),
        }
    }
    fn literal_schema() -> Schema {
        json_schema!({ "type": "boolean" })
    }
}

/// A whole number (user counts, replicas, workers, weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub(crate) struct Count(pub u64);

impl FieldKind for Count {
    fn parse(value: &Scalar) -> Result<Self, FieldError> {
        let n = match value {
            Scalar::Int(i) => *i,
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => *f as i64,
            Scalar::Str(s) => match s.trim().parse::<i64>() {
                Ok(n) => n,
                Err(_) => return Err(FieldError::NotWhole(value.clone())),
            },
            other => return Err(FieldError::NotWhole(other.clone())),
        };
        u64::try_from(n)
            .map(Count)
            .map_err(|_| FieldError::NegativeWhole(n))
    }
    fn literal_schema() -> Schema {
        json_schema!({ "type": "integer", "minimum": 0 })
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::base::limits::thousands(u128::from(self.0)))
    }
}

/// A non-negative decimal number (rates, costs).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
pub(crate) struct Number(pub f64);

impl FieldKind for Number {
    fn parse(value: &Scalar) -> Result<Self, FieldError> {
        let x = match value {
            Scalar::Int(i) => *i as f64,
            Scalar::Float(f) => *f,
            Scalar::Str(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| FieldError::NotNumber(value.clone()))?,
            Scalar::Bool(_) => return Err(FieldError::NotNumber(value.clone())),
        };
        if !x.is_finite() || x < 0.0 {
            return Err(FieldError::NotNonNegative(x));
        }
        Ok(Number(x))
    }
    fn literal_schema() -> Schema {
        json_schema!({ "type": "number", "minimum": 0 })
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 && self.0 < 1e15 {
            f.write_str(&crate::base::limits::thousands(self.0 as u128))
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn string_only(
    value: &Scalar,
    what: &'static str,
    example: &'static str,
) -> Result<String, FieldError> {
    match value {
        Scalar::Str(s) => Ok(s.clone()),
        Scalar::Int(0) => Ok("0".into()),
        other => Err(FieldError::NotString {
            what,
            example,
            found: other.clone(),
        }),
    }
}

impl FieldKind for std::time::Duration {
    fn parse(value: &Scalar) -> Result<Self, FieldError> {
        let text = string_only(value, "a duration", "2m")?;
        Ok(crate::base::units::parse_duration(&text)?)
    }
    fn literal_schema() -> Schema {
        json_schema!({ "type": "string", "pattern": DURATION_PATTERN, "examples": ["2m", "1.5s", "250ms"] })
    }
}

pub(crate) const DURATION_PATTERN: &str = r"^\s*(0|([0-9]+(\.[0-9]+)?(us|µs|ms|s|m|h))+)\s*$";

/// A size in bytes written like "1GiB".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Size(pub u64);

impl FieldKind for Size {
    fn parse(value: &Scalar) -> Result<Self, FieldError> {
        match value {
            Scalar::Int(i) if *i >= 0 => Ok(Size(*i as u64)),
            other => {
                let text = string_only(other, "a size", "1GiB")?;
                Ok(Size(crate::base::units::parse_size(&text)?))
            }
        }
    }
    fn literal_schema() -> Schema {
        json_schema!({ "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([kKMGT]i?B|B)?\s*$", "examples": ["1GiB", "500MB"] }
        ] })
    }
}

impl FieldKind for crate::base::units::ThinkTime {
    fn parse(value: &Scalar) -> Result<Self, FieldError> {
        let text = string_only(value, "a think time", "0.5s..1s")?;
        Ok(crate::base::units::parse_think_time(&text)?)
    }
    fn literal_schema() -> Schema {
        json_schema!({ "type": "string", "examples": ["0s", "1s", "0.5s..1s"] })
    }
}

/// Implements [`FieldKind`] for a unit enum whose variants are written in
/// snake case.
macro_rules! keyword_kind {
    ($ty:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub(crate) enum $ty { $($variant),+ }

        impl $ty {
            pub(crate) const ALL: &'static [&'static str] = &[$($text),+];
            #[allow(dead_code, reason = "not every keyword is printed")]
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }

        impl FieldKind for $ty {
            fn parse(value: &Scalar) -> Result<Self, FieldError> {
                let text = match value {
                    Scalar::Str(s) => s.trim(),
                    other => return Err(FieldError::NotKeyword { expected: Self::ALL, found: other.to_string(), hint: None }),
                };
                match text {
                    $($text => Ok($ty::$variant),)+
                    other => Err(FieldError::NotKeyword {
                        expected: Self::ALL,
                        found: format!("\"{other}\""),
                        hint: super::suggest::did_you_mean(other, Self::ALL.iter().copied(), super::suggest::Closeness::Similar),
                    }),
                }
            }
            fn literal_schema() -> Schema {
                json_schema!({ "type": "string", "enum": Self::ALL })
            }
        }
    };
}

pub(crate) fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

keyword_kind!(Backend { None = "none", Local = "local", Docker = "docker", Compose = "compose", Swarm = "swarm" });
keyword_kind!(Engine { Native = "native", Locust = "locust" });
keyword_kind!(HttpMethod { Get = "GET", Post = "POST", Put = "PUT", Patch = "PATCH", Delete = "DELETE", Head = "HEAD", Options = "OPTIONS" });
keyword_kind!(HttpVersion { Http1 = "1.1", Http2 = "2" });
keyword_kind!(WorkersAt { Local = "local", External = "external" });
