//! The safetensors header grammar: escapes, JSON errors with offsets, and
//! the lazy lookups, on hand-written headers.

use nq_runtime::policy::safetensors::*;

fn file(header: &str, data: &[u8]) -> [u8; 512] {
    let mut out = [0u8; 512];
    out[..8].copy_from_slice(&(header.len() as u64).to_le_bytes());
    out[8..8 + header.len()].copy_from_slice(header.as_bytes());
    out[8 + header.len()..8 + header.len() + data.len()].copy_from_slice(data);
    out
}

fn parse_with(header: &str, data: &[u8]) -> Result<(), SafetensorsError> {
    let buf = file(header, data);
    Checkpoint::parse(&buf[..8 + header.len() + data.len()]).map(|_| ())
}

#[test]
fn escapes_decode_and_compare() {
    let h = r#"{"a\u0062\"c\n":{"shape":[1],"dtype":"F32","data_offsets":[0,4]}, "__metadata__":{"k\/ey":"v\u00e9\ud83d\ude00"}}"#;
    let buf = file(h, &[0, 0, 128, 63]);
    let ck = Checkpoint::parse(&buf[..8 + h.len() + 4]).unwrap();
    let t = ck.tensor("ab\"c\n").unwrap();
    assert_eq!(t.get(0), Some(1.0));
    let v = ck.metadata("k/ey").unwrap();
    assert_eq!(v.plain(), None);
    let mut buf = [0u8; 16];
    assert_eq!(v.decode_into(&mut buf), Some("vé😀"));
    assert_eq!(v.decode_into(&mut [0u8; 3]), None);
}

#[test]
fn json_errors_say_where() {
    let err = parse_with(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}]"#,
        &[0; 4],
    );
    assert!(
        matches!(err, Err(SafetensorsError::BadJson { offset: 53, .. })),
        "{err:?}"
    );
    for bad in [
        r#"{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}"#,
        r#"{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#,
        r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},}"#,
        r#"{"a\q":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        r#"{"__metadata__":{"k":1}}"#,
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x"#,
        "{\"a\t\":{}}",
        "",
    ] {
        assert!(
            matches!(
                parse_with(bad, &[0; 4]),
                Err(SafetensorsError::BadJson { .. })
            ),
            "{bad}: {:?}",
            parse_with(bad, &[0; 4])
        );
    }
}

#[test]
fn entry_problems_are_named() {
    let err = parse_with(r#"{"w":{"dtype":"F32","shape":[1]}}"#, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `w`: bad entry: `data_offsets` is missing"
    );
    let err = parse_with(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}"#,
        &[0; 4],
    )
    .unwrap_err();
    assert!(matches!(err, SafetensorsError::BadTensorEntry { .. }));
    let err = parse_with(
        r#"{"w":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    )
    .unwrap_err();
    assert!(matches!(err, SafetensorsError::RankTooHigh { .. }));
    let err = parse_with(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
        &[0; 4],
    )
    .unwrap_err();
    assert!(matches!(err, SafetensorsError::InvalidOffsets { .. }));
    let err = parse_with(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, &[0; 8]).unwrap_err();
    assert!(matches!(err, SafetensorsError::DuplicateTensor { .. }));
    let err = parse_with(r#"{"__metadata__":{"k":"a","k":"b"}}"#, &[]).unwrap_err();
    assert_eq!(err.to_string(), "metadata key `k` appears twice");
}

#[test]
fn empty_and_scalar_tensors() {
    let h = r#"{ "s" : { "dtype" : "F32" , "shape" : [ ] , "data_offsets" : [ 0 , 4 ] } , "e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]} }   "#;
    let buf = file(h, &[0, 0, 0, 64]);
    let ck = Checkpoint::parse(&buf[..8 + h.len() + 4]).unwrap();
    assert_eq!(ck.tensor("s").unwrap().values().next(), Some(2.0));
    assert!(ck.tensor("e").unwrap().is_empty());
    assert_eq!(ck.tensors().count(), 2);
    assert!(ck.metadata("x").is_none());
}
