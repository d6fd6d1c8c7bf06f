#include "client/plan/solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace rtnq::client {
namespace {

// An item's options that can be optimal: sorted by bytes, errors strictly decreasing (an option
// costing at least as much as another and erring at least as much is never needed).
struct Frontier {
  std::vector<int> option;  // index into SolverItem::options
  std::vector<uint64_t> bytes;
  std::vector<double> error;
};

Frontier Reduce(const SolverItem& item) {
  std::vector<int> order(item.options.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const SolverOption &x = item.options[a], &y = item.options[b];
    if (x.bytes != y.bytes) return x.bytes < y.bytes;
    if (x.error != y.error) return x.error < y.error;
    return a < b;
  });
  Frontier f;
  for (int k : order) {
    const SolverOption& o = item.options[k];
    if (!f.error.empty() && o.error >= f.error.back()) continue;
    f.option.push_back(k);
    f.bytes.push_back(o.bytes);
    f.error.push_back(o.error);
  }
  return f;
}

// One step along an item's lower convex hull: from hull point `from` to the next, gaining
// `slope` error per byte.
struct Segment {
  double slope;
  size_t item;
  size_t rank;  // position of the step within its item
  size_t to;    // frontier index after the step
  uint64_t bytes;
};

std::vector<size_t> LowerHull(const Frontier& f) {
  std::vector<size_t> hull;
  for (size_t k = 0; k < f.bytes.size(); ++k) {
    // Drop the last hull point while it lies on or above the line from its predecessor to k.
    while (hull.size() >= 2) {
      const size_t a = hull[hull.size() - 2], b = hull.back();
      const long double cross =
          static_cast<long double>(f.error[a] - f.error[b]) * (f.bytes[k] - f.bytes[a]) -
          static_cast<long double>(f.error[a] - f.error[k]) * (f.bytes[b] - f.bytes[a]);
      if (cross > 0) break;
      hull.pop_back();
    }
    hull.push_back(k);
  }
  return hull;
}

struct Node {
  uint64_t bytes;
  double error;
  uint32_t parent;
  uint32_t pick;  // frontier index
};

}  // namespace

SolverItem GroupItem(const std::vector<std::vector<std::optional<SolverOption>>>& members) {
  SolverItem item;
  size_t candidates = 0;
  for (const auto& m : members) candidates = std::max(candidates, m.size());
  for (size_t k = 0; k < candidates && !members.empty(); ++k) {
    SolverOption sum{0, 0.0, static_cast<int>(k)};
    bool all = true;
    for (const auto& m : members) {
      if (k >= m.size() || !m[k].has_value()) {
        all = false;
        break;
      }
      sum.bytes += m[k]->bytes;
      sum.error += m[k]->error;
    }
    if (all) item.options.push_back(sum);
  }
  return item;
}

uint64_t MinimumBytes(const std::vector<SolverItem>& items) {
  uint64_t total = 0;
  for (const SolverItem& item : items) {
    uint64_t least = std::numeric_limits<uint64_t>::max();
    for (const SolverOption& o : item.options) least = std::min(least, o.bytes);
    total += item.options.empty() ? 0 : least;
  }
  return total;
}

SolverResult MinimizeBytes(const std::vector<SolverItem>& items) {
  SolverResult r;
  for (const SolverItem& item : items) {
    int best = 0;
    for (size_t k = 1; k < item.options.size(); ++k) {
      const SolverOption &o = item.options[k], &b = item.options[best];
      if (o.bytes < b.bytes || (o.bytes == b.bytes && o.error < b.error)) best = k;
    }
    r.option.push_back(best);
    if (!item.options.empty()) {
      r.bytes += item.options[best].bytes;
      r.error += item.options[best].error;
    }
  }
  return r;
}

absl::StatusOr<SolverResult> MinimizeError(const std::vector<SolverItem>& items, uint64_t budget,
                                           const SolverLimits& limits) {
  const size_t n = items.size();
  std::vector<Frontier> fronts;
  fronts.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (items[i].options.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("item ", i, " has no options"));
    }
    for (const SolverOption& o : items[i].options) {
      if (!std::isfinite(o.error) || o.error < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("item ", i, " option ", o.tag, ": error ", o.error, " is not >= 0"));
      }
    }
    fronts.push_back(Reduce(items[i]));
  }
  const uint64_t least = MinimumBytes(items);
  if (least > budget) {
    return absl::OutOfRangeError(
        absl::StrCat("the choice needs at least ", least, " bytes, the budget is ", budget));
  }
  auto result_of = [&](const std::vector<size_t>& pick) {
    SolverResult r;
    for (size_t i = 0; i < n; ++i) {
      r.option.push_back(fronts[i].option[pick[i]]);
      r.bytes += fronts[i].bytes[pick[i]];
      r.error += fronts[i].error[pick[i]];
    }
    return r;
  };
  // Everything at its smallest error fits: nothing to trade.
  std::vector<size_t> pick(n);
  for (size_t i = 0; i < n; ++i) pick[i] = fronts[i].bytes.size() - 1;
  if (SolverResult best = result_of(pick); best.bytes <= budget) {
    best.states = n;
    return best;
  }

  // Incumbent: take hull steps by falling slope while they fit (LP greedy, then fill). The
  // first step that does not fit gives the Lagrange multiplier of the bound.
  std::vector<Segment> segments;
  for (size_t i = 0; i < n; ++i) {
    const Frontier& f = fronts[i];
    const std::vector<size_t> hull = LowerHull(f);
    for (size_t j = 0; j + 1 < hull.size(); ++j) {
      const size_t a = hull[j], b = hull[j + 1];
      segments.push_back({(f.error[a] - f.error[b]) / static_cast<double>(f.bytes[b] - f.bytes[a]),
                          i, j, b, f.bytes[b] - f.bytes[a]});
    }
  }
  std::sort(segments.begin(), segments.end(), [](const Segment& x, const Segment& y) {
    if (x.slope != y.slope) return x.slope > y.slope;
    return std::tie(x.item, x.rank) < std::tie(y.item, y.rank);
  });
  std::fill(pick.begin(), pick.end(), 0);
  std::vector<size_t> taken(n, 0);
  std::vector<bool> blocked(n, false);
  uint64_t room = budget - least;
  double lambda = 0;
  bool have_lambda = false;
  for (const Segment& s : segments) {
    if (blocked[s.item] || taken[s.item] != s.rank) continue;
    if (s.bytes <= room) {
      room -= s.bytes;
      pick[s.item] = s.to;
      ++taken[s.item];
    } else {
      blocked[s.item] = true;
      if (!have_lambda) lambda = s.slope;
      have_lambda = true;
    }
  }
  const double upper = result_of(pick).error;
  const double tolerance = 1e-9 * std::abs(upper);

  // Suffix bounds: bytes every completion needs, its smallest possible error, and the
  // Lagrangian bound S - lambda * room (weak duality, valid for any lambda >= 0).
  std::vector<uint64_t> rest_bytes(n + 1, 0);
  std::vector<double> rest_error(n + 1, 0), rest_dual(n + 1, 0);
  for (size_t i = n; i-- > 0;) {
    const Frontier& f = fronts[i];
    double dual = std::numeric_limits<double>::infinity();
    for (size_t k = 0; k < f.bytes.size(); ++k) {
      dual = std::min(dual, f.error[k] + lambda * static_cast<double>(f.bytes[k]));
    }
    rest_bytes[i] = rest_bytes[i + 1] + f.bytes.front();
    rest_error[i] = rest_error[i + 1] + f.error.back();
    rest_dual[i] = rest_dual[i + 1] + dual;
  }

  std::vector<std::vector<uint32_t>> parents(n), picks(n);
  std::vector<Node> level = {{0, 0.0, 0, 0}}, next;
  size_t states = 1;
  for (size_t i = 0; i < n; ++i) {
    const Frontier& f = fronts[i];
    next.clear();
    for (size_t s = 0; s < level.size(); ++s) {
      const Node& node = level[s];
      for (size_t k = 0; k < f.bytes.size(); ++k) {
        const uint64_t bytes = node.bytes + f.bytes[k];
        if (bytes + rest_bytes[i + 1] > budget) break;  // options are sorted by bytes
        const double error = node.error + f.error[k];
        const double bound =
            error + std::max(rest_error[i + 1],
                             rest_dual[i + 1] - lambda * static_cast<double>(budget - bytes));
        if (bound > upper + tolerance) continue;
        next.push_back({bytes, error, static_cast<uint32_t>(s), static_cast<uint32_t>(k)});
      }
    }
    std::sort(next.begin(), next.end(), [](const Node& a, const Node& b) {
      return std::tie(a.bytes, a.error, a.parent, a.pick) <
             std::tie(b.bytes, b.error, b.parent, b.pick);
    });
    // Keep the Pareto frontier: each kept state errs strictly less than every cheaper one.
    size_t kept = 0;
    for (const Node& node : next) {
      if (kept > 0 && node.error >= next[kept - 1].error) continue;
      next[kept++] = node;
    }
    next.resize(kept);
    states += kept;
    if (states > limits.max_states) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the exact search kept more than ", limits.max_states,
                       " states; use fewer candidates or group more tensors"));
    }
    if (next.empty()) {
      return absl::InternalError(absl::StrCat("no state survived item ", i, " of ", n));
    }
    parents[i].reserve(kept);
    picks[i].reserve(kept);
    for (const Node& node : next) {
      parents[i].push_back(node.parent);
      picks[i].push_back(node.pick);
    }
    std::swap(level, next);
  }
  // The last state has the smallest error (and the fewest bytes among equals).
  uint32_t s = static_cast<uint32_t>(level.size() - 1);
  for (size_t i = n; i-- > 0;) {
    pick[i] = picks[i][s];
    s = parents[i][s];
  }
  SolverResult best = result_of(pick);
  best.states = states;
  return best;
}

}  // namespace rtnq::client
