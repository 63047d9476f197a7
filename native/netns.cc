// Helper-thread execution inside a network namespace. See netns.h.
#include "netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>

namespace sluice {

SysError OpenNetns(const std::string& path, int* fd) {
  *fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return SysError::Make(errno, "open", path);
  return SysError::Ok();
}

SysError IfIndex(const std::string& name, int* ifindex) {
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) return SysError::Make(errno == 0 ? ENODEV : errno, "if_nametoindex", name);
  *ifindex = static_cast<int>(idx);
  return SysError::Ok();
}

namespace {
struct Job {
  const std::string* path;
  const std::function<SysError()>* fn;
  SysError result;
};

void* ThreadMain(void* arg) {
  auto* job = static_cast<Job*>(arg);
  int fd;
  job->result = OpenNetns(*job->path, &fd);
  if (!job->result.ok()) return nullptr;
  if (setns(fd, CLONE_NEWNET) != 0) {
    job->result = SysError::Make(errno, "setns", *job->path);
    close(fd);
    return nullptr;
  }
  close(fd);
  job->result = (*job->fn)();
  return nullptr;
}
}  // namespace

SysError RunInNetns(const std::optional<std::string>& netns, const std::function<SysError()>& fn) {
  if (!netns) return fn();
  Job job{&*netns, &fn, SysError::Ok()};
  // pthread rather than std::thread: with -fno-exceptions a failed
  // std::thread construction would terminate the process, whereas
  // pthread_create gives us an errno to report.
  pthread_t tid;
  int rc = pthread_create(&tid, nullptr, ThreadMain, &job);
  if (rc != 0) return SysError::Make(rc, "pthread_create");
  pthread_join(tid, nullptr);
  return job.result;
}

}  // namespace sluice
