#include "control/waiter.h"

#include <utility>

namespace ferry::control {

bool Waiter::Poll() {
  if (done_) return false;
  std::optional<absl::Status> answer = Attempt();
  if (!answer.has_value()) return false;
  Finish(*std::move(answer));
  return true;
}

bool Waiter::End(WaitEnd why) {
  if (done_) return false;
  Finish(GiveUp(why));
  return true;
}

bool Waiter::Complete(absl::Status status) {
  if (done_) return false;
  Finish(std::move(status));
  return true;
}

void Waiter::Finish(absl::Status status) {
  done_ = true;
  status_ = std::move(status);
  Unregister();
}

void Waiter::Deliver() {
  if (!done_ || delivered_) return;
  delivered_ = true;
  std::move(reply_)(std::move(status_));
}

}  // namespace ferry::control
