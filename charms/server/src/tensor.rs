//! Tensor data as it arrives in JSON: flat (`[1, 2, 3]`) or nested (`[[1, 2], [3]]`) arrays of
//! numbers, deserialised straight into one flat `Vec<f32>` without an intermediate `Value` tree.
//!
//! While flattening we remember whether every value was an integer in 0..=255, so that a UINT8
//! tensor can be validated after the fact (JSON does not promise `datatype` comes before `data`),
//! and we count the values of each top-level element so TF Serving rows can be checked one by one.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Numbers of a JSON tensor, flattened in row-major order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlatTensor {
    pub values: Vec<f32>,
    /// True when every value was an integer in 0..=255 (a valid UINT8 tensor).
    pub all_uint8: bool,
    /// Value counts of the top-level elements (rows), when the top level was an array.
    pub row_lens: Vec<usize>,
    /// For TF Serving's `instances`: true when some top-level element was a `{name: tensor}` object.
    pub had_named_rows: bool,
}

/// Typical request: one 28×28 image; pre-sizing avoids a few reallocations.
const INITIAL_CAPACITY: usize = 1024;

impl<'de> serde::Deserialize<'de> for FlatTensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut flat = FlatTensor {
            values: Vec::with_capacity(INITIAL_CAPACITY),
            all_uint8: true,
            row_lens: Vec::new(),
            had_named_rows: false,
        };
        deserializer.deserialize_any(TopVisitor {
            out: &mut flat,
            allow_named: false,
        })?;
        Ok(flat)
    }
}

/// TF Serving's `instances`: like [`FlatTensor`] but each row may be `{"input_name": tensor}`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Instances(pub FlatTensor);

impl<'de> serde::Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut flat = FlatTensor {
            values: Vec::with_capacity(INITIAL_CAPACITY),
            all_uint8: true,
            row_lens: Vec::new(),
            had_named_rows: false,
        };
        deserializer.deserialize_any(TopVisitor {
            out: &mut flat,
            allow_named: true,
        })?;
        Ok(Instances(flat))
    }
}

/// TF Serving's columnar `inputs`: a batched tensor, or `{"<input name>": batched tensor}`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Columnar(pub FlatTensor);

impl<'de> serde::Deserialize<'de> for Columnar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ColumnarVisitor;
        impl<'de> Visitor<'de> for ColumnarVisitor {
            type Value = FlatTensor;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a batched tensor or an object {\"<input name>\": batched tensor}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<FlatTensor, A::Error> {
                serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlatTensor, A::Error> {
                let Some(_name) = map.next_key::<de::IgnoredAny>()? else {
                    return Err(de::Error::custom("inputs must name exactly one input"));
                };
                let tensor: FlatTensor = map.next_value()?;
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "inputs names more than one input; this model has one input",
                    ));
                }
                Ok(tensor)
            }
        }
        deserializer.deserialize_any(ColumnarVisitor).map(Columnar)
    }
}

/// The top level: records per-row counts, then hands each row to [`NestedSeed`].
struct TopVisitor<'a> {
    out: &'a mut FlatTensor,
    allow_named: bool,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers, flat or nested")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let before = self.out.values.len();
            let seed = RowSeed {
                out: &mut *self.out,
                allow_named: self.allow_named,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            let len = self.out.values.len() - before;
            self.out.row_lens.push(len);
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push_u64(self.out, v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push_i64(self.out, v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        push_f64(self.out, v)
    }
}

/// One row: a number, a nested array, or (TF `instances` only) a single-entry object.
struct RowSeed<'a> {
    out: &'a mut FlatTensor,
    allow_named: bool,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.allow_named {
            f.write_str("a number, an array of numbers or an object {\"<input name>\": [numbers]}")
        } else {
            f.write_str("a number or an array of numbers")
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        NestedSeed { out: self.out }.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if !self.allow_named {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        }
        self.out.had_named_rows = true;
        let mut entries = 0;
        while let Some(_name) = map.next_key::<de::IgnoredAny>()? {
            entries += 1;
            if entries > 1 {
                return Err(de::Error::custom(
                    "an instance object must have exactly one entry (this model has one input)",
                ));
            }
            map.next_value_seed(NestedSeed {
                out: &mut *self.out,
            })?;
        }
        if entries == 0 {
            return Err(de::Error::custom(
                "an instance object must have exactly one entry",
            ));
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push_u64(self.out, v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push_i64(self.out, v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        push_f64(self.out, v)
    }
}

/// Anything below a row: numbers and arrays of arrays, all appended to the flat buffer.
/// serde_json's recursion limit (128) bounds the nesting depth.
struct NestedSeed<'a> {
    out: &'a mut FlatTensor,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an array of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(NestedSeed {
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push_u64(self.out, v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push_i64(self.out, v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        push_f64(self.out, v)
    }
}

fn push_u64(out: &mut FlatTensor, v: u64) {
    if v > 255 {
        out.all_uint8 = false;
    }
    out.values.push(v as f32);
}

fn push_i64<E: de::Error>(out: &mut FlatTensor, v: i64) -> Result<(), E> {
    // serde_json only calls visit_i64 for negative integers.
    out.all_uint8 = false;
    out.values.push(v as f32);
    Ok(())
}

fn push_f64<E: de::Error>(out: &mut FlatTensor, v: f64) -> Result<(), E> {
    let x = v as f32;
    if !x.is_finite() {
        return Err(E::custom(format_args!("{v} does not fit in FP32")));
    }
    out.all_uint8 = false;
    out.values.push(x);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(json: &str) -> Result<FlatTensor, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn flat_and_nested_arrays_flatten_to_the_same_values() {
        let a = flat("[1, 2, 3, 4]").unwrap();
        let b = flat("[[1, 2], [3, 4]]").unwrap();
        assert_eq!(a.values, b.values);
        assert_eq!(b.row_lens, vec![2, 2]);
        assert_eq!(a.row_lens, vec![1, 1, 1, 1]);
    }

    #[test]
    fn uint8_is_tracked_over_every_value() {
        assert!(flat("[0, 255, 17]").unwrap().all_uint8);
        assert!(!flat("[0, 256]").unwrap().all_uint8);
        assert!(!flat("[0, -1]").unwrap().all_uint8);
        assert!(!flat("[0, 1.5]").unwrap().all_uint8);
        // 1.0 is written as a float: a UINT8 tensor must be written with integers.
        assert!(!flat("[1.0]").unwrap().all_uint8);
    }

    #[test]
    fn non_numbers_and_out_of_range_floats_are_errors() {
        for bad in [
            "[\"a\"]",
            "[null]",
            "[true]",
            "[{\"a\": 1}]",
            "[1e39]",
            "{}",
            "\"x\"",
        ] {
            assert!(flat(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn instances_accept_named_rows_but_only_with_one_entry() {
        let Instances(t) = serde_json::from_str("[{\"x\": [1, 2]}, {\"x\": [3, 4]}]").unwrap();
        assert_eq!(t.values, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(t.row_lens, vec![2, 2]);
        assert!(t.had_named_rows);
        assert!(serde_json::from_str::<Instances>("[{\"x\": [1], \"y\": [2]}]").is_err());
        assert!(serde_json::from_str::<Instances>("[{}]").is_err());
    }

    #[test]
    fn columnar_inputs_accept_a_tensor_or_one_named_tensor() {
        let Columnar(a) = serde_json::from_str("[[1, 2], [3, 4]]").unwrap();
        let Columnar(b) = serde_json::from_str("{\"x\": [[1, 2], [3, 4]]}").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.row_lens, vec![2, 2]);
        assert!(serde_json::from_str::<Columnar>("{}").is_err());
        assert!(serde_json::from_str::<Columnar>("{\"x\": [1], \"y\": [2]}").is_err());
        assert!(serde_json::from_str::<Columnar>("3").is_err());
    }

    #[test]
    fn absurd_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(flat(&deep).is_err());
    }
}
