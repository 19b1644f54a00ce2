// ferryd's local gRPC service (proto/sidecar.proto), served on a unix socket. A thin
// adapter: validates requests and sessions, then calls Node.
#pragma once

#include <vector>

#include "dataplane/sidecar/arena_server.h"
#include "dataplane/sidecar/node.h"
#include "proto/sidecar.grpc.pb.h"

namespace ferry::dataplane {

// The store's metadata for an object a client creates (CreateRequest.meta), after checking
// it: a known dtype, a size that is a whole number of elements, and a count (0 = derived
// from the size) that matches the size. INVALID_ARGUMENT naming the mismatch otherwise.
absl::StatusOr<StoredMeta> StoredMetaFromProto(const proto::ObjectMeta& meta);

class SidecarService final : public proto::Sidecar::Service {
 public:
  SidecarService(Node* node, const ArenaServer* sessions) : node_(node), sessions_(sessions) {}

  grpc::Status Create(grpc::ServerContext*, const proto::CreateRequest*, proto::CreateReply*) override;
  grpc::Status Seal(grpc::ServerContext*, const proto::SealRequest*, proto::SealReply*) override;
  grpc::Status Abort(grpc::ServerContext*, const proto::AbortRequest*, proto::AbortReply*) override;
  grpc::Status Get(grpc::ServerContext*, const proto::GetRequest*, proto::GetReply*) override;
  grpc::Status Release(grpc::ServerContext*, const proto::ReleaseRequest*, proto::ReleaseReply*) override;
  grpc::Status Delete(grpc::ServerContext*, const proto::DeleteObjectRequest*, proto::DeleteObjectReply*) override;
  grpc::Status List(grpc::ServerContext*, const proto::ListObjectsRequest*, proto::ListObjectsReply*) override;
  grpc::Status Status(grpc::ServerContext*, const proto::StatusRequest*, proto::StatusReply*) override;
  grpc::Status Broadcast(grpc::ServerContext*, const proto::SidecarBroadcastRequest*,
                         proto::SidecarBroadcastReply*) override;
  grpc::Status BroadcastBatch(grpc::ServerContext*, const proto::SidecarBroadcastBatchRequest*,
                              proto::SidecarBroadcastBatchReply*) override;
  grpc::Status CreateBatch(grpc::ServerContext*, const proto::CreateBatchRequest*, proto::BatchOutcomesReply*) override;
  grpc::Status SealBatch(grpc::ServerContext*, const proto::SealBatchRequest*, proto::BatchOutcomesReply*) override;
  grpc::Status GetBatch(grpc::ServerContext*, const proto::GetBatchRequest*, proto::BatchOutcomesReply*) override;
  grpc::Status DeleteBatch(grpc::ServerContext*, const proto::SidecarDeleteBatchRequest*,
                           proto::BatchOutcomesReply*) override;

  // FAILED_PRECONDITION unless `session` is a live client session of this ferryd.
  absl::Status CheckSession(uint64_t session) const;
  // A local request on `session`'s arena connection (shm/local_channel.h), run on the arena
  // server's thread: a Get of an object sealed here, or a Release. It never waits: anything
  // it cannot answer at once (not sealed here, an invalid request) is kFallback, and the
  // client makes the RPC, which reports the error.
  shm::LocalReply ServeLocal(uint64_t session, const shm::LocalRequest& request);
  grpc::Status Reduce(grpc::ServerContext*, const proto::SidecarReduceRequest*, proto::SidecarReduceReply*) override;
  grpc::Status AllReduce(grpc::ServerContext*, const proto::SidecarReduceRequest*, proto::SidecarReduceReply*) override;
  grpc::Status Group(grpc::ServerContext*, const proto::GroupRequest*, proto::GroupReply*) override;

 private:
  grpc::Status RunReduce(const proto::SidecarReduceRequest* req, bool all, proto::SidecarReduceReply* reply);
  [[nodiscard]] absl::Status ResolveNodes(const google::protobuf::RepeatedPtrField<std::string>& wanted,
                                          std::vector<uint64_t>* ids);

  Node* node_;
  const ArenaServer* sessions_;
};

}  // namespace ferry::dataplane
