// O(1) connection timers (worker, after fork): one intrusive FIFO list per timeout kind. Every
// entry of a list has the same duration, so appending keeps it sorted by deadline and expiry
// only ever looks at the head; arming, re-arming and cancelling are unlink/append.
#pragma once

#include <optional>

#include "common/clock.hpp"

namespace prefork::worker {

class TimerList;

// Embedded in its owner; in at most one list at a time.
struct TimerNode {
  explicit TimerNode(void* owner_ptr) : owner(owner_ptr) {}
  TimerNode(const TimerNode&) = delete;
  TimerNode& operator=(const TimerNode&) = delete;
  ~TimerNode() { cancel(); }

  [[nodiscard]] bool armed() const noexcept { return list != nullptr; }
  void cancel() noexcept;

  void* const owner;
  TimerList* list = nullptr;
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  common::Millis deadline = 0;
};

class TimerList {
 public:
  explicit TimerList(common::Millis duration) : duration_(duration) {}
  TimerList(const TimerList&) = delete;
  TimerList& operator=(const TimerList&) = delete;
  ~TimerList() {
    while (head_ != nullptr) head_->cancel();
  }

  // (Re)starts `node`: it expires `duration` after `now`.
  void arm(TimerNode& node, common::Millis now) noexcept {
    node.cancel();
    node.list = this;
    node.deadline = now + duration_;
    node.prev = tail_;
    node.next = nullptr;
    (tail_ != nullptr ? tail_->next : head_) = &node;
    tail_ = &node;
  }

  // (Re)starts `node` to expire at `deadline`, for a list whose entries differ in duration
  // (the delays of ?delay): sorted insertion from the tail, O(1) when deadlines only grow.
  void arm_at(TimerNode& node, common::Millis deadline) noexcept {
    node.cancel();
    node.list = this;
    node.deadline = deadline;
    TimerNode* after = tail_;
    while (after != nullptr && after->deadline > deadline) after = after->prev;
    node.prev = after;
    node.next = after != nullptr ? after->next : head_;
    (node.next != nullptr ? node.next->prev : tail_) = &node;
    (after != nullptr ? after->next : head_) = &node;
  }

  // The first node whose deadline has passed, unlinked; nullptr when none has.
  TimerNode* pop_expired(common::Millis now) noexcept {
    if (head_ == nullptr || head_->deadline > now) return nullptr;
    TimerNode* node = head_;
    node->cancel();
    return node;
  }

  [[nodiscard]] std::optional<common::Millis> next_deadline() const noexcept {
    if (head_ == nullptr) return std::nullopt;
    return head_->deadline;
  }
  [[nodiscard]] common::Millis duration() const noexcept { return duration_; }
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }

 private:
  friend struct TimerNode;
  common::Millis duration_;
  TimerNode* head_ = nullptr;
  TimerNode* tail_ = nullptr;
};

inline void TimerNode::cancel() noexcept {
  if (list == nullptr) return;
  (prev != nullptr ? prev->next : list->head_) = next;
  (next != nullptr ? next->prev : list->tail_) = prev;
  list = nullptr;
  prev = next = nullptr;
}

}  // namespace prefork::worker
