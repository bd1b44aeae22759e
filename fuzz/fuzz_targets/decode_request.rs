//! Any bytes as a request frame body: decoding must return Ok or Err, never panic, hang or
//! allocate what the input merely claims.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isthmus_protocol::codec::decode_untrusted(data);
});
