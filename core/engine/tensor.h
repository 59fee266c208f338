// Eigen aliases used everywhere in moelab.
//
// Convention, stated once: ROW = TOKEN. A batch of hidden states is a (n_tokens, d_model) matrix,
// one token per row. Weight matrices are stored (out, in), as in PyTorch and safetensors, so a
// linear layer is y = x * W^T. Every tensor field in core/ says its shape in a comment.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace moe {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXf;                                  // column vector
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using IVec = Eigen::VectorXi;

using MatRef = Eigen::Ref<Mat>;
using ConstMatRef = Eigen::Ref<const Mat>;

}  // namespace moe
