//! The parameter names of an argument struct, read from its derived
//! `Deserialize`: the one declaration both parsing and the docs check.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The field names serde expects for struct `T`, read from its derived
/// `Deserialize` impl: the one declaration of a module's parameters.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct FieldGrabber<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for FieldGrabber<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("argument types must be structs"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields captured"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldGrabber(&mut fields));
    fields
}
