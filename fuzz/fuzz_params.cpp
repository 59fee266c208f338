// Hugging Face config.json text -> the parameter counter and its JSON report.
#include "core/teach/params.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    return moe::fuzz::run_one([&] {
        const moe::ModelConfig c = moe::parse_model_config(moe::fuzz::as_text(data, size), "config.json");
        const moe::ParamReport r = moe::count_model_params(c);
        if (r.active_params > r.total_params || r.total_params < 0) moe::fuzz::fail("active > total parameters");
        (void)moe::report_to_json(r);
    });
}
