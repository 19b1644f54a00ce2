#include "dataplane/engine/chunk_server.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "dataplane/engine/chunk_request.h"

namespace ferry::dataplane {

void ChunkServer::Attach(Transport* transport) {
  transport->SetFetchHandler([this](NodeId from, std::string_view header, std::unique_ptr<FetchResponder> r) {
    Handle(from, header, std::move(r));
  });
}

void ChunkServer::Handle(NodeId from, std::string_view header, std::unique_ptr<FetchResponder> responder) {
  absl::StatusOr<ChunkRequest> req = DecodeChunkRequest(header);
  if (!req.ok()) {
    ++rejected_;
    responder->Fail(absl::InvalidArgumentError(absl::StrCat("from node ", from, ": ", req.status().message())));
    return;
  }
  store_->ServeChunk(
      req->ns, req->key, req->chunk_size, req->chunk,
      [this, responder = std::move(responder)](absl::StatusOr<ServeSlice> slice) mutable {
        if (!slice.ok()) {
          ++rejected_;
          responder->Fail(slice.status());
          return;
        }
        ++chunks_served_;
        bytes_served_ += slice->len;
        ServeSlice held = *slice;
        responder->Reply(arena_base_ + slice->offset, slice->len,
                         [this, held](absl::Status) { store_->UnpinServe(held); });
      });
}

}  // namespace ferry::dataplane
