// The error bound of row_loss_rough (kernels.h), and why it holds.
//
// Notation: u = 2^-24; per element x of a group with scale s (one quantile), t = x / s exactly;
// the exact loss takes code c from fl(x / s) and error e = fl(x - fl(c s)); the rough loss takes
// code c' from y = fl(x * r) = t (1 + th), r within 1.07 u of 1 / s (V::Recip), so
// |th| <= 2.1 u, and error s * d with d = fl(y - c'). Let a = s (t - c) and a' = s (t - c') be
// the true errors of the two codes (the rough loss uses the same float32 scale s as the exact).
// For the groups row_loss_rough evaluates (RoughParams::usable): |t| < 2^20 and no overflow.
//
// 1. |e - a| <= 1.01 u (|x| + 2|a|) (fl(c s) = c s (1 + al) with |c s| <= |x| + |a|, then the
//    subtraction's rounding), so |e^2 - a^2| <= 2.02 u |x||a| + 4.04 u a^2 + 2.1 u^2 (x^2 + 4a^2).
// 2. |s d - a'| <= 1.01 (th |x| + u |a'|) (y - c' = t - c' + t th, then one rounding), so
//    |(s d)^2 - a'^2| <= 2.02 th |x||a'| + 2.02 u a'^2 + 2.1 (th^2 x^2 + u^2 a'^2).
// 3. c != c' only when fl(x / s) and y round apart, i.e. a half-integer h lies between them,
//    both within th |t| of t: then c, c' = h -+ 1/2 (clamping equal codes stays equal, and the
//    two differ by at most 1 because th |t| < 1/4), |t - h| <= th |t|, and
//    |a^2 - a'^2| = 2 s^2 |t - h| <= 2 th |s| |x|, while |a'| <= |a| + 2 th |x|.
// Summing over the elements with Cauchy-Schwarz (sum |x||a| <= sqrt(X sum a^2), X = sum x^2),
// sum a^2 <= 1.001 E + 2100 u^2 X (E the exact loss; from 1. and 2ab <= eps a^2 + b^2 / eps),
// and the scale term S = sum over groups of max |s| * sum |x| >= sum |s||x| (terms.scale_abs):
//   |E - R*| <= 6.3 u sqrt(X Q) + 6.1 u Q + 4.3 u S + 320 u^2 X   for any Q >= E,
// where R* is the rough loss in exact arithmetic. The float32 sums (<= 40 roundings of positive
// terms per partial sum, then double) and the widening give |R - R*| <= 2^-18 R*, and float32
// underflow at most `elements` * kFastLossAbsError. Groups evaluated as row_loss_fast are within
// 2^-18 E + kFastLossAbsError per element. The constants below round all of these up, and X and
// S (float32 sums of at most a few hundred terms per lane, then double) by 0.1%.
#include <cmath>

#include "core/kernels/kernels.h"

namespace rtnq {

double RoughLossBound(double rough, const RoughLossTerms& terms, double elements) {
  constexpr double u = 0x1p-24;
  const double x2 = 1.001 * terms.sum_sq;
  const double s = 1.001 * terms.scale_abs;
  // |E - R| <= c0 + c1 Q + c2 sqrt(Q) with Q >= E, R.
  const double c0 = 0x1p-17 * rough + 5 * u * s + 512 * u * u * x2 + elements * kFastLossAbsError;
  const double c1 = 7 * u;
  const double c2 = 7 * u * std::sqrt(x2);
  // Q = R + c0 + c1 Q + c2 sqrt(Q) bounds E (and R): the larger root in sqrt(Q).
  const double root = (c2 + std::sqrt(c2 * c2 + 4 * (1 - c1) * (rough + c0))) / (2 * (1 - c1));
  const double q = root * root;
  return c0 + c1 * q + c2 * std::sqrt(q);
}

}  // namespace rtnq
