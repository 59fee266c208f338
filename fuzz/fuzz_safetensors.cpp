// safetensors bytes -> parse_safetensors; an accepted file of writable dtypes must survive a
// write and a re-read unchanged.
#include <cmath>
#include <cstring>

#include "core/io/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    return moe::fuzz::run_one([&] {
        const moe::SafeTensorsFile f = moe::parse_safetensors(moe::fuzz::as_text(data, size), "fuzz.safetensors");
        moe::SafeTensorsFile writable;
        writable.metadata = f.metadata;
        for (const auto& [name, t] : f.tensors) {
            if (t.shape.size() == 1 || t.shape.size() == 2) (void)moe::tensor_to_mat(t, "fuzz.safetensors", name);
            if (t.dtype == "F32" || t.dtype == "F16" || t.dtype == "BF16") writable.tensors.emplace(name, t);
        }
        const moe::SafeTensorsFile back = moe::parse_safetensors(moe::serialize_safetensors(writable), "round trip");
        if (back.tensors.size() != writable.tensors.size() || back.metadata != writable.metadata) moe::fuzz::fail("round trip changed the tensor list");
        for (const auto& [name, t] : writable.tensors) {
            const moe::SafeTensor& b = back.tensors.at(name);
            if (b.shape != t.shape || b.dtype != t.dtype || b.data.size() != t.data.size()) moe::fuzz::fail("round trip changed a shape");
            // Values read from F16/BF16 are exactly representable, so writing them back is exact (NaN stays NaN).
            for (size_t i = 0; i < t.data.size(); ++i)
                if (std::memcmp(&b.data[i], &t.data[i], 4) != 0 && !(std::isnan(b.data[i]) && std::isnan(t.data[i])))
                    moe::fuzz::fail("round trip changed a value");
        }
    });
}
