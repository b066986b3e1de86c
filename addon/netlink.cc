// vhsm_netlink: a thin Node-API wrapper over one AF_NETLINK socket.
//
// It opens, binds, configures and closes the socket, sends buffers to the
// kernel, and hands every received datagram to JavaScript through a uv_poll
// watcher on Node's own event loop (no thread, no busy loop). All netlink
// framing lives in TypeScript (netlink/*.ts), where it is unit-tested.

#include <napi.h>
#include <uv.h>

#include <linux/netlink.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

namespace {

// Larger than anything the vhsm family sends (payload <= 32 KiB) and than a
// kernel dump skb (<= 32 KiB). A larger datagram is reported as EMSGSIZE.
constexpr size_t kReceiveBufferBytes = 64 * 1024;

// Datagrams handled per wakeup, so that a producer faster than JavaScript
// cannot starve the loop. The poll is level-triggered: the rest is read on
// the next turn.
constexpr unsigned kMaxDatagramsPerWakeup = 4096;

// An error shaped like Node core's system errors: .code ('ENOBUFS'),
// .errno (negative, as in Node), .syscall. Built with the C API only, so the
// receive path (which runs outside any JS call, possibly while a worker is
// being terminated) never meets node-addon-api's abort-on-failure paths.
// Returns nullptr if the environment can no longer create objects.
napi_value CreateSystemError(napi_env env, int err, const char* syscall, const char* detail = nullptr) {
  char name[64];
  char text[128];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, text, sizeof text);
  std::string message = std::string(syscall) + " " + name + ": " + (detail ? detail : text);
  napi_value js_message, error, code, number, call;
  if (napi_create_string_utf8(env, message.c_str(), message.size(), &js_message) != napi_ok ||
      napi_create_error(env, nullptr, js_message, &error) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_int32(env, -err, &number) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &call) != napi_ok ||
      napi_set_named_property(env, error, "code", code) != napi_ok ||
      napi_set_named_property(env, error, "errno", number) != napi_ok ||
      napi_set_named_property(env, error, "syscall", call) != napi_ok) {
    return nullptr;
  }
  return error;
}

// The same, to throw from a method called by JavaScript.
Napi::Error SystemError(Napi::Env env, int err, const char* syscall, const char* detail = nullptr) {
  napi_value error = CreateSystemError(env, err, syscall, detail);
  if (error == nullptr) throw Napi::Error::New(env);
  return Napi::Error(env, error);
}

// libuv reports negative errnos.
Napi::Error UvError(Napi::Env env, int uv_status, const char* call) {
  return SystemError(env, -uv_status, call);
}

uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= UINT32_MAX) || std::floor(value) != value) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an integer from 0 to 2^32-1");
  }
  return static_cast<uint32_t>(value);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a boolean");
  }
  return info[index].As<Napi::Boolean>().Value();
}

class NetlinkSocket;

// What must outlive the JS object while a close is in progress: the socket,
// the uv_poll handle (its memory is freed only by uv_close's callback) and
// an async cleanup hook, which makes Node wait for that callback before it
// unloads this library (worker termination, process exit).
struct Resources {
  explicit Resources(int socket_fd) : fd(socket_fd) {}
  Resources(const Resources&) = delete;
  Resources& operator=(const Resources&) = delete;
  ~Resources() {
    if (fd >= 0) ::close(fd);
  }

  int fd;
  bool poll_initialized = false;
  uv_poll_t poll{};
  napi_async_cleanup_hook_handle hook = nullptr;
  NetlinkSocket* owner = nullptr;  // null once released
};

void FreeResources(Resources* resources) {
  napi_async_cleanup_hook_handle hook = resources->hook;
  delete resources;
  if (hook != nullptr) napi_remove_async_cleanup_hook(hook);
}

// Stops watching, closes the socket, and frees everything once libuv is
// done with the handle.
void ReleaseResources(Resources* resources) {
  resources->owner = nullptr;
  if (!resources->poll_initialized) {
    FreeResources(resources);
    return;
  }
  uv_poll_stop(&resources->poll);
  // uv_close takes the fd out of epoll synchronously; the fd can go now.
  uv_close(reinterpret_cast<uv_handle_t*>(&resources->poll),
           [](uv_handle_t* handle) { FreeResources(static_cast<Resources*>(handle->data)); });
  ::close(resources->fd);
  resources->fd = -1;
}

class NetlinkSocket : public Napi::ObjectWrap<NetlinkSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetlinkSocket",
                       {
                           InstanceMethod<&NetlinkSocket::Bind>("bind"),
                           InstanceMethod<&NetlinkSocket::SetRecvBuffer>("setRecvBuffer"),
                           InstanceMethod<&NetlinkSocket::SetExtAck>("setExtAck"),
                           InstanceMethod<&NetlinkSocket::SetStrictCheck>("setStrictCheck"),
                           InstanceMethod<&NetlinkSocket::SetCapAck>("setCapAck"),
                           InstanceMethod<&NetlinkSocket::SetNoEnobufs>("setNoEnobufs"),
                           InstanceMethod<&NetlinkSocket::Send>("send"),
                           InstanceMethod<&NetlinkSocket::Start>("start"),
                           InstanceMethod<&NetlinkSocket::Stop>("stop"),
                           InstanceMethod<&NetlinkSocket::Close>("close"),
                           InstanceMethod<&NetlinkSocket::RefLoop>("ref"),
                           InstanceMethod<&NetlinkSocket::UnrefLoop>("unref"),
                           InstanceAccessor<&NetlinkSocket::Closed>("closed"),
                       });
  }

  explicit NetlinkSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetlinkSocket>(info), env_(info.Env()) {
    auto resources = std::make_unique<Resources>(OpenSocket(info));
    if (napi_add_async_cleanup_hook(env_, OnEnvTeardown, resources.get(), &resources->hook) != napi_ok) {
      throw Napi::Error::New(env_, "napi_add_async_cleanup_hook failed");
    }
    resources->owner = this;
    resources_ = resources.release();
  }

  ~NetlinkSocket() override { Release(ReleaseFrom::kDestructor); }

 private:
  enum class ReleaseFrom { kJavaScript, kEnvTeardown, kDestructor };

  // new NetlinkSocket(protocol, netnsFd?): with netnsFd, the socket is created
  // inside that network namespace (a netlink socket's namespace is fixed at
  // creation). Needs CAP_SYS_ADMIN; lets one test process act as clients of
  // several containers.
  static int OpenSocket(const Napi::CallbackInfo& info) {
    uint32_t protocol = ArgUint32(info, 0, "protocol");
    if (protocol > INT_MAX) throw Napi::RangeError::New(info.Env(), "protocol out of range");
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      uint32_t netns_fd = ArgUint32(info, 1, "netnsFd");
      if (netns_fd > INT_MAX) throw Napi::RangeError::New(info.Env(), "netnsFd out of range");
      return OpenSocketInNetns(info.Env(), static_cast<int>(protocol), static_cast<int>(netns_fd));
    }
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, static_cast<int>(protocol));
    if (fd < 0) throw SystemError(info.Env(), errno, "socket");
    return fd;
  }

  static int OpenSocketInNetns(Napi::Env env, int protocol, int netns_fd) {
    int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) throw SystemError(env, errno, "open", "/proc/thread-self/ns/net");
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      int err = errno;
      ::close(home);
      throw SystemError(env, err, "setns");
    }
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    int socket_errno = errno;
    // This thread runs all of JavaScript: it must never stay in the other namespace.
    if (::setns(home, CLONE_NEWNET) != 0) std::abort();
    ::close(home);
    if (fd < 0) throw SystemError(env, socket_errno, "socket");
    return fd;
  }

  int RequireOpen(Napi::Env env, const char* syscall) const {
    if (resources_ == nullptr) throw SystemError(env, EBADF, syscall, "socket is closed");
    return resources_->fd;
  }

  uv_handle_t* PollHandle() const {
    return resources_ != nullptr && resources_->poll_initialized ? reinterpret_cast<uv_handle_t*>(&resources_->poll)
                                                                  : nullptr;
  }

  // bind(groups = 0) -> the port id the kernel assigned.
  Napi::Value Bind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = RequireOpen(env, "bind");
    uint32_t groups = info.Length() > 0 && !info[0].IsUndefined() ? ArgUint32(info, 0, "groups") : 0;
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = groups;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) throw SystemError(env, errno, "bind");
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
      throw SystemError(env, errno, "getsockname");
    }
    return Napi::Number::New(env, addr.nl_pid);
  }

  // setRecvBuffer(bytes) -> the size the kernel reports back (it doubles the
  // request for bookkeeping). SO_RCVBUFFORCE passes net.core.rmem_max but
  // needs CAP_NET_ADMIN; without it, SO_RCVBUF is capped at rmem_max.
  Napi::Value SetRecvBuffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = RequireOpen(env, "setsockopt");
    uint32_t requested = ArgUint32(info, 0, "bytes");
    int bytes = requested > INT_MAX / 2 ? INT_MAX / 2 : static_cast<int>(requested);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0) {
      int err = errno;
      if (err != EPERM) throw SystemError(env, err, "setsockopt");
      if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) < 0) {
        throw SystemError(env, errno, "setsockopt");
      }
    }
    int effective = 0;
    socklen_t len = sizeof effective;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &effective, &len) < 0) throw SystemError(env, errno, "getsockopt");
    return Napi::Number::New(env, effective);
  }

  void SetNetlinkFlag(const Napi::CallbackInfo& info, int option, const char* what) {
    Napi::Env env = info.Env();
    int fd = RequireOpen(env, "setsockopt");
    int value = ArgBool(info, 0, what) ? 1 : 0;
    if (::setsockopt(fd, SOL_NETLINK, option, &value, sizeof value) < 0) throw SystemError(env, errno, "setsockopt");
  }
  void SetExtAck(const Napi::CallbackInfo& info) { SetNetlinkFlag(info, NETLINK_EXT_ACK, "on"); }
  void SetStrictCheck(const Napi::CallbackInfo& info) { SetNetlinkFlag(info, NETLINK_GET_STRICT_CHK, "on"); }
  void SetCapAck(const Napi::CallbackInfo& info) { SetNetlinkFlag(info, NETLINK_CAP_ACK, "on"); }
  // An overrun of this socket's queue then neither latches congestion (which
  // would refuse every later message until the queue is empty) nor reports
  // ENOBUFS: each message that did not fit is refused on its own.
  void SetNoEnobufs(const Napi::CallbackInfo& info) { SetNetlinkFlag(info, NETLINK_NO_ENOBUFS, "on"); }

  // send(bytes) -> bytes sent, to the kernel (port 0). Never blocks.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = RequireOpen(env, "sendto");
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "send(bytes): bytes must be a Uint8Array");
    }
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t sent;
    do {
      sent = ::sendto(fd, bytes.Data(), bytes.ByteLength(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&kernel),
                      sizeof kernel);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) throw SystemError(env, errno, "sendto");
    return Napi::Number::New(env, static_cast<double>(sent));
  }

  // start(callback): callback(null, datagram, senderPortId) per datagram, or
  // callback(error) (ENOBUFS = the kernel dropped messages for us; the socket
  // stays usable). While started, the JS object is kept alive.
  void Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = RequireOpen(env, "uv_poll_start");
    if (info.Length() < 1 || !info[0].IsFunction()) {
      throw Napi::TypeError::New(env, "start(callback): callback must be a function");
    }
    if (!resources_->poll_initialized) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
        throw Napi::Error::New(env, "napi_get_uv_event_loop failed");
      }
      int status = uv_poll_init(loop, &resources_->poll, fd);
      if (status < 0) throw UvError(env, status, "uv_poll_init");
      resources_->poll_initialized = true;
      resources_->poll.data = resources_;
      if (!referenced_) uv_unref(PollHandle());
    }
    if (!async_context_) async_context_ = std::make_unique<Napi::AsyncContext>(env, "VhsmNetlinkSocket");
    if (buffer_.empty()) buffer_.resize(kReceiveBufferBytes);
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    int status = uv_poll_start(&resources_->poll, UV_READABLE, OnPoll);
    if (status < 0) throw UvError(env, status, "uv_poll_start");
    if (!polling_) {
      polling_ = true;
      Ref();
    }
  }

  void Stop(const Napi::CallbackInfo&) { StopPolling(true); }

  // close(): idempotent.
  void Close(const Napi::CallbackInfo&) { Release(ReleaseFrom::kJavaScript); }

  // ref()/unref(): whether a started socket keeps the event loop alive.
  void RefLoop(const Napi::CallbackInfo&) {
    referenced_ = true;
    if (uv_handle_t* handle = PollHandle()) uv_ref(handle);
  }
  void UnrefLoop(const Napi::CallbackInfo&) {
    referenced_ = false;
    if (uv_handle_t* handle = PollHandle()) uv_unref(handle);
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), resources_ == nullptr); }

  void StopPolling(bool drop_js_ref) {
    if (resources_ != nullptr && resources_->poll_initialized) uv_poll_stop(&resources_->poll);
    if (polling_) {
      polling_ = false;
      if (drop_js_ref) Unref();
    }
    callback_.Reset();
  }

  void Release(ReleaseFrom from) {
    if (resources_ == nullptr) return;
    // The destructor runs while the wrapper is being finalized: its
    // reference must not be touched then.
    StopPolling(from != ReleaseFrom::kDestructor);
    Resources* resources = resources_;
    resources_ = nullptr;
    ReleaseResources(resources);
  }

  // Environment teardown: close now; Node waits for the hook's removal,
  // which happens once libuv has finished with the handle.
  static void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
    auto* resources = static_cast<Resources*>(arg);
    if (resources->owner != nullptr) resources->owner->Release(ReleaseFrom::kEnvTeardown);
    // Otherwise a close is already under way and its callback removes the hook.
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* resources = static_cast<Resources*>(handle->data);
    if (resources->owner != nullptr) resources->owner->Drain(status);
  }

  // Reads every queued datagram (up to kMaxDatagramsPerWakeup) and hands
  // each to JavaScript. Uses the C API only: see CreateSystemError.
  void Drain(int status) {
    if (status < 0) {
      // libuv turns POLLERR into UV_EBADF and stops the watcher. On a netlink
      // socket POLLERR means a pending socket error (ENOBUFS after an
      // overrun) that recvmsg reports once and clears: re-arm, then read.
      if (!polling_ || resources_ == nullptr) return;
      int rearmed = uv_poll_start(&resources_->poll, UV_READABLE, OnPoll);
      if (rearmed < 0) {
        EmitError(-rearmed, "uv_poll_start");
        return;
      }
    }
    for (unsigned n = 0; n < kMaxDatagramsPerWakeup && polling_ && resources_ != nullptr; ++n) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
      bool more = ReceiveOne();
      napi_close_handle_scope(env_, scope);
      if (!more) return;
    }
  }

  // One recvmsg; false when there is nothing more to do on this wakeup.
  bool ReceiveOne() {
    sockaddr_nl from{};
    iovec iov{buffer_.data(), buffer_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t got = ::recvmsg(resources_->fd, &msg, MSG_DONTWAIT);
    if (got < 0) {
      int err = errno;
      if (err == EINTR) return true;
      if (err == EAGAIN || err == EWOULDBLOCK) return false;
      // An overrun is reported once and cleared by the kernel; anything else
      // may repeat, so wait for the next wakeup instead of spinning.
      return EmitError(err, "recvmsg") && err == ENOBUFS;
    }
    if (msg.msg_flags & MSG_TRUNC) {
      return EmitError(EMSGSIZE, "recvmsg", "datagram larger than the receive buffer, dropped");
    }
    napi_value datagram, sender, null;
    void* data = nullptr;
    if (napi_create_buffer_copy(env_, static_cast<size_t>(got), buffer_.data(), &data, &datagram) != napi_ok ||
        napi_create_uint32(env_, from.nl_pid, &sender) != napi_ok || napi_get_null(env_, &null) != napi_ok) {
      return false;
    }
    return Emit(null, datagram, sender);
  }

  bool EmitError(int err, const char* syscall, const char* detail = nullptr) {
    napi_value error = CreateSystemError(env_, err, syscall, detail);
    napi_value undefined;
    if (error == nullptr || napi_get_undefined(env_, &undefined) != napi_ok) return false;
    return Emit(error, undefined, undefined);
  }

  // Calls the JS callback as a top-level callback (microtasks and nextTicks
  // run after it). An exception it throws becomes an uncaught exception.
  bool Emit(napi_value error, napi_value datagram, napi_value sender) {
    if (callback_.IsEmpty() || !async_context_) return false;
    napi_value callback, self, result;
    if (napi_get_reference_value(env_, callback_, &callback) != napi_ok || callback == nullptr) return false;
    if (napi_get_reference_value(env_, static_cast<const Napi::Reference<Napi::Object>&>(*this), &self) != napi_ok ||
        self == nullptr) {
      return false;
    }
    napi_value argv[] = {error, datagram, sender};
    napi_status status = napi_make_callback(env_, *async_context_, self, callback, 3, argv, &result);
    if (status == napi_ok) return true;
    napi_value exception;
    napi_valuetype type;
    if (status == napi_pending_exception && napi_get_and_clear_last_exception(env_, &exception) == napi_ok &&
        napi_typeof(env_, exception, &type) == napi_ok && type != napi_null) {
      // null is what a terminating worker "throws": nothing to report then.
      napi_fatal_exception(env_, exception);
    }
    return false;
  }

  napi_env env_;
  Resources* resources_ = nullptr;  // null once closed
  bool polling_ = false;
  bool referenced_ = true;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
  std::vector<uint8_t> buffer_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NetlinkSocket", NetlinkSocket::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(vhsm_netlink, Init)
