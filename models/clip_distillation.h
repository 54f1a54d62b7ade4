#pragma once
// Knowledge distillation for CLIP / SigLIP (Clip::set_teacher): the student's image-text logits
// learn the teacher's, over the same (global) batch the contrastive loss scores.
//
// Logits: student s_ij = t * <img_i, txt_j> (+ bias for SIGLIP), with its own clamped scale t;
// teacher the same with the TEACHER's scale and bias (its embeddings of its own width, so any
// size of teacher works). Both are divided by the distillation temperature T:
//   INFONCE: soft InfoNCE targets, KD = (KL_rows + KL_columns) / 2 with KL_rows =
//     T^2 * mean_i KL(softmax(teacher row i / T) || softmax(student row i / T)) (image->text) and
//     KL_columns the same over the columns (text->image): the symmetric loss's two directions.
//   SIGLIP: every pair's sigmoid probability, KD = T^2 * (1/B) sum_ij binary KL(p_ij || q_ij)
//     (models/distillation.h sigmoid_distillation_term), normalised as SigLIP's loss.
//
// Data parallel (dp with R > 1 ranks, equal B_local rows): both models' embeddings are
// all-gathered and this rank's rows are scored against all B_global columns in each direction,
// as the gathered InfoNCE does (models/distributed_contrastive_loss.h, for SIGLIP too: the KD
// needs no ring). The outputs follow that header's GRADIENT SCALING: the loss returned is this
// rank's rows' mean (R times its share; the group's average is the global KD), the embedding
// gradients are R times the global KD's (the gathered copies' gradients reduce-scattered, summed,
// to their owners), dt and dbias this rank's share times R.

#include "distributed/communicator.h"
#include "models/contrastive_loss.h"

namespace tessera::models {

// img, txt: the student's (B_local, E) L2-normalised embeddings, with t and bias (0 for INFONCE);
// teacher_img, teacher_txt: the teacher's (B_local, E_t), normalised, with its t and bias.
// Returns KD (above) and scale * dKD/dt, scale * dKD/dbias. With scale != 0, ADDS
// scale * dKD/d(img) and d(txt) to dimg, dtxt (B_local, E). dp: nullptr or one rank = this batch.
// Collective over dp: every rank calls it with the same kind, shapes and scale == 0 or not.
ContrastiveResult contrastive_distillation_term(config::ClipConfig::Loss kind,
                                                distributed::Communicator* dp, const Tensor& img,
                                                const Tensor& txt, float t, float bias,
                                                const Tensor& teacher_img,
                                                const Tensor& teacher_txt, float teacher_t,
                                                float teacher_bias, float temperature, float scale,
                                                const Tensor& dimg, const Tensor& dtxt);

}  // namespace tessera::models
