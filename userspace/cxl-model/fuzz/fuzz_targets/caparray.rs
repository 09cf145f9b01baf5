#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cxl_model_fuzz::caparray::run(data));
