#include "events.h"

#include "constants.h"

namespace weft {

EventQueue* EventQueue::create(Napi::Env env, Napi::Function callback) {
  auto* self = new EventQueue();
  try {
    self->tsfn_ = Tsfn::New(env, callback, "weft-native-events", 0, 1, self,
                            [](Napi::Env, void*, EventQueue* ctx) { delete ctx; });
  } catch (...) {
    delete self;
    throw;
  }
  // Not keeping the loop alive until the device starts.
  self->tsfn_.Unref(env);
  return self;
}

void EventQueue::schedule(std::unique_lock<std::mutex>& lock) {
  if (scheduled_ || released_) return;
  scheduled_ = true;
  lock.unlock();
  if (tsfn_.NonBlockingCall() != napi_ok) {
    // Closing: nothing will be delivered any more.
    lock.lock();
    scheduled_ = false;
  }
}

void EventQueue::push(Event&& ev) {
  std::unique_lock<std::mutex> lock(mu_);
  if (released_) return;
  pending_.push_back(std::move(ev));
  schedule(lock);
}

bool EventQueue::pushHandshake(Event&& ev) {
  std::unique_lock<std::mutex> lock(mu_);
  if (released_) return true;
  if (pendingHandshakes_ >= kMaxQueuedHandshakes) return false;
  ++pendingHandshakes_;
  pending_.push_back(std::move(ev));
  schedule(lock);
  return true;
}

void EventQueue::ref(Napi::Env env) { tsfn_.Ref(env); }
void EventQueue::unref(Napi::Env env) { tsfn_.Unref(env); }

void EventQueue::release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (released_) return;
    released_ = true;
  }
  tsfn_.Release();
}

void EventQueue::deliver(Napi::Env env, Napi::Function callback, EventQueue* self, void*) {
  std::vector<Event> batch;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    batch.swap(self->pending_);
    self->pendingHandshakes_ = 0;
    self->scheduled_ = false;
  }
  // env is null while the environment is being torn down: drop the batch.
  if (env == nullptr || callback.IsEmpty() || batch.empty()) return;
  Napi::HandleScope scope(env);
  Napi::Array list = Napi::Array::New(env, batch.size());
  uint32_t i = 0;
  for (Event& ev : batch) {
    Napi::Object o = Napi::Object::New(env);
    switch (ev.kind) {
      case Event::Kind::HandshakeComplete:
        o.Set("kind", "handshake-complete");
        o.Set("peer", Napi::Number::New(env, ev.peer));
        o.Set("initiator", Napi::Boolean::New(env, ev.initiator));
        break;
      case Event::Kind::NeedHandshake:
        o.Set("kind", "need-handshake");
        o.Set("peer", Napi::Number::New(env, ev.peer));
        break;
      case Event::Kind::KeypairConfirmed:
        o.Set("kind", "keypair-confirmed");
        o.Set("peer", Napi::Number::New(env, ev.peer));
        break;
      case Event::Kind::DeviceGone:
        o.Set("kind", "device-gone");
        o.Set("reason", ev.reason);
        break;
    }
    list.Set(i++, o);
  }
  // An exception thrown by the callback propagates as an uncaught exception (wrapped by
  // node-addon-api), like one thrown from any other event listener.
  callback.Call({list});
}

}  // namespace weft
