#include "control/placement/placement_request.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ferry::control::placement {
namespace {

absl::Status ValidateAlternative(const PlacementAlternative& alt, size_t index) {
  const std::string where = absl::StrCat("alternative ", index);
  const int constraint = static_cast<int>(alt.constraint);
  if (constraint < static_cast<int>(Constraint::kNone) || constraint > static_cast<int>(Constraint::kSameLabelValue)) {
    return absl::InvalidArgumentError(absl::StrCat(where, " has an unknown constraint (", constraint, ")"));
  }
  if (alt.bundles.empty()) return absl::InvalidArgumentError(absl::StrCat(where, " has no bundles"));
  if (alt.bundles.size() > kMaxBundles) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " has ", alt.bundles.size(), " bundles, above the limit ", kMaxBundles));
  }
  if (alt.constraint == Constraint::kSameLabelValue && alt.label_key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": a same-label-value constraint needs a label key"));
  }
  if (alt.constraint != Constraint::kSameLabelValue && !alt.label_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": label key '", alt.label_key, "' given without a same-label-value constraint"));
  }
  for (size_t b = 0; b < alt.bundles.size(); ++b) {
    const ResourceMap& bundle = alt.bundles[b];
    if (bundle.empty()) return absl::InvalidArgumentError(absl::StrCat(where, " bundle ", b, " asks for nothing"));
    if (bundle.size() > kMaxDemandsPerBundle) {
      return absl::InvalidArgumentError(absl::StrCat(where, " bundle ", b, " names ", bundle.size(),
                                                     " resources, above the limit ", kMaxDemandsPerBundle));
    }
    for (const auto& [name, amount] : bundle) {
      FERRY_RETURN_IF_ERROR(ValidateResourceName(name));
      const std::string what = absl::StrCat(where, " bundle ", b, " amount of '", name, "'");
      FERRY_RETURN_IF_ERROR(ValidateAmount(amount, what));
      if (amount == 0) return absl::InvalidArgumentError(absl::StrCat(what, " is 0 (leave the resource out)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRequest(const PlacementRequest& request, absl::Time now) {
  if (request.holder.empty()) return absl::InvalidArgumentError("placement request has no holder (client id)");
  if (request.holder.size() > kMaxHolderLength) {
    return absl::InvalidArgumentError(absl::StrCat("holder id is longer than ", kMaxHolderLength, " characters"));
  }
  if (request.alternatives.empty()) return absl::InvalidArgumentError("placement request is empty (no alternatives)");
  if (request.alternatives.size() > kMaxAlternatives) {
    return absl::InvalidArgumentError(absl::StrCat("placement request has ", request.alternatives.size(),
                                                   " alternatives, above the limit ", kMaxAlternatives));
  }
  for (size_t i = 0; i < request.alternatives.size(); ++i) {
    FERRY_RETURN_IF_ERROR(ValidateAlternative(request.alternatives[i], i));
  }
  if (request.scoring != Scoring::kPack && request.scoring != Scoring::kSpread) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown scoring (", static_cast<int>(request.scoring), "): pack or spread"));
  }
  if (request.lease_ttl <= absl::ZeroDuration() || request.lease_ttl == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease ttl ", absl::FormatDuration(request.lease_ttl), " must be positive and finite"));
  }
  if (request.deadline <= now) {
    return absl::InvalidArgumentError(absl::StrCat("deadline ", absl::FormatTime(request.deadline),
                                                   " is not after now (", absl::FormatTime(now), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ResolvedRequest> ResolveRequest(const PlacementRequest& request, ResourceTable& table,
                                               bool intern_unknown) {
  ResolvedRequest out;
  for (const PlacementAlternative& alt : request.alternatives) {
    ResolvedAlternative r;
    r.constraint = alt.constraint;
    r.label_key = alt.label_key;
    for (const ResourceMap& bundle : alt.bundles) {
      ResolvedBundle rb;
      for (const auto& [name, amount] : bundle) {
        std::optional<ResourceId> id = table.Find(name);
        if (!intern_unknown && (!id || table.Holders(*id).empty())) {
          return absl::NotFoundError(absl::StrCat("unknown resource '", name, "': no node has it"));
        }
        if (!id) id = table.Intern(name);
        rb.demands.push_back({*id, amount});
        out.resources.push_back(*id);
      }
      std::sort(rb.demands.begin(), rb.demands.end(),
                [](const Demand& a, const Demand& b) { return a.resource < b.resource; });
      r.bundles.push_back(std::move(rb));
    }
    out.alternatives.push_back(std::move(r));
  }
  std::sort(out.resources.begin(), out.resources.end());
  out.resources.erase(std::unique(out.resources.begin(), out.resources.end()), out.resources.end());
  return out;
}

}  // namespace ferry::control::placement
