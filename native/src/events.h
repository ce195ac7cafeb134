// Events from the packet threads to JavaScript (NativeEvent in src/wireguard/native.ts). The device
// pushes them into an EventSink; the N-API implementation (EventQueue) batches them and delivers
// each batch with one thread-safe function call. Handshake completions are bounded: at most
// kMaxQueuedHandshakes wait for JavaScript at any time (the handshake messages themselves never
// reach JavaScript: handshake/workers.h).
#pragma once

#include <napi.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "allowed_ips.h"
#include "endpoint.h"

namespace weft {

struct Event {
  enum class Kind { HandshakeComplete, NeedHandshake, KeypairConfirmed, DeviceGone };
  explicit Event(Kind k) : kind(k) {}
  Kind kind;
  PeerId peer = 0;
  bool initiator = false;  // HandshakeComplete: our initiation was answered (else we answered one)
  std::string reason;      // DeviceGone
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void push(Event&& ev) = 0;
  /** False (event discarded) when too many handshake completions are already waiting. */
  virtual bool pushHandshake(Event&& ev) = 0;
};

/**
 * EventSink over a ThreadSafeFunction. Created and owned by the JS-side wrapper; it deletes itself
 * when the thread-safe function is finalized, after release() and the last delivery.
 */
class EventQueue : public EventSink {
 public:
  static EventQueue* create(Napi::Env env, Napi::Function callback);
  void push(Event&& ev) override;
  bool pushHandshake(Event&& ev) override;
  /** Keep the event loop alive (while the device runs) or not. JS thread only. */
  void ref(Napi::Env env);
  void unref(Napi::Env env);
  /** No more pushes after this; pending events are still delivered. JS thread only, once. */
  void release();

 private:
  static void deliver(Napi::Env env, Napi::Function callback, EventQueue* self, void* unused);
  using Tsfn = Napi::TypedThreadSafeFunction<EventQueue, void, &EventQueue::deliver>;
  EventQueue() = default;
  void schedule(std::unique_lock<std::mutex>& lock);

  std::mutex mu_;
  std::vector<Event> pending_;
  size_t pendingHandshakes_ = 0;
  bool scheduled_ = false;
  bool released_ = false;
  Tsfn tsfn_;
};

}  // namespace weft
