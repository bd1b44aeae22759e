//! Any bytes as the records of a Produce request or the tail of a segment file: the batch
//! view must validate or refuse them without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isthmus_protocol::batch::check_untrusted(data);
});
