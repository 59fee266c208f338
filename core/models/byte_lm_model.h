// The built-in byte LM (core/models/lm.h) as a Model (core/models/model.h). lm.cpp's math is
// used as it is; this file only translates between token ids and bytes and describes the model.
#pragma once

#include <memory>
#include <string>

#include "core/models/lm.h"
#include "core/models/model.h"

namespace moe {

// `source` is the file it came from (empty for random weights).
std::unique_ptr<Model> make_byte_lm_model(LmModel lm, std::string source);

// The byte LM described for the parameter counter (core/teach/params.h), counted by exactly the
// same rules as Mixtral or DeepSeek-V3, at its trained K with its shared experts.
ModelConfig byte_lm_param_config(const LmConfig& lm);

}  // namespace moe
