//! The field names of a parameters struct, as serde sees them (after renames), read from its
//! derived `Deserialize`: what turns by-position parameters into by-name ones, so that
//! trailing optional parameters may be left out (`blocks_add ["<base64>"]`).

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

/// The serialized field names of `T`, in declaration order (empty when `T` is not a struct).
pub fn names<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(Introspect) {
        Err(Found(Some(fields))) => fields,
        _ => &[],
    }
}

/// Pairs by-position parameters with the field names of `T`; more values than fields is an
/// error naming the fields. Fields past the last value are left out, for serde's defaults.
pub fn by_name<T: DeserializeOwned>(values: Vec<Value>) -> Result<Map<String, Value>, String> {
    let fields = names::<T>();
    if values.len() > fields.len() {
        return Err(format!(
            "{} parameters by position, at most {} expected ({})",
            values.len(),
            fields.len(),
            fields.join(", ")
        ));
    }
    Ok(fields.iter().map(|f| f.to_string()).zip(values).collect())
}

/// A deserializer that answers every request with an error, carrying the fields when asked
/// for a struct.
struct Introspect;

#[derive(Debug)]
struct Found(Option<&'static [&'static str]>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("introspection only")
    }
}

impl std::error::Error for Found {}

impl de::Error for Found {
    fn custom<M: fmt::Display>(_msg: M) -> Self {
        Found(None)
    }
}

impl<'de> de::Deserializer<'de> for Introspect {
    type Error = Found;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Found> {
        Err(Found(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Found> {
        Err(Found(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct P {
        community_id: String,
        chunk_size: Option<usize>,
        #[serde(default)]
        topics: Vec<String>,
    }

    #[test]
    fn names_are_the_serialized_ones_in_order() {
        assert_eq!(names::<P>(), ["communityId", "chunkSize", "topics"]);
        assert!(names::<u32>().is_empty());
    }

    #[test]
    fn trailing_values_may_be_left_out_but_not_added() {
        let m = by_name::<P>(vec!["0x01".into()]).unwrap();
        let p: P = serde_json::from_value(Value::Object(m)).unwrap();
        assert_eq!((p.community_id.as_str(), p.chunk_size, p.topics.len()), ("0x01", None, 0));
        let m = by_name::<P>(vec!["0x01".into(), 5.into(), serde_json::json!(["a"])]).unwrap();
        let p: P = serde_json::from_value(Value::Object(m)).unwrap();
        assert_eq!((p.chunk_size, p.topics.len()), (Some(5), 1));
        let e = by_name::<P>(vec![Value::Null; 4]).unwrap_err();
        assert!(e.contains("at most 3") && e.contains("communityId, chunkSize, topics"), "{e}");
    }
}
