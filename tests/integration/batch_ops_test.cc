// Batch Put / Create+Seal / Get / Delete on a local cluster of real processes (ferry-coord and
// ferryds over gRPC and UCX): a model-like batch stored on one node arrives byte for byte on
// another in one GetBatch; an entry that fails (a name taken, an object that never appears)
// fails alone while the others complete; GetBatch waits for objects created after it started;
// DeleteBatch removes every copy everywhere; malformed batches (repeated names, mixed
// namespaces, bad metadata, more bytes than the arena) are refused whole with nothing stored;
// the coordinator's batch RPCs refuse bad requests sent to them directly.
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

class BatchOpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = 3;
    o.arena = "128MiB";
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // A model: `n` tensors of `prefix`/i with the given sizes and Pattern contents.
  struct Model {
    std::vector<ObjectName> names;
    std::vector<std::vector<uint8_t>> data;
    std::vector<Client::PutEntry> Entries() const {
      std::vector<Client::PutEntry> out;
      for (size_t i = 0; i < names.size(); ++i) out.push_back({names[i], data[i]});
      return out;
    }
  };
  static Model MakeModel(const std::string& prefix, const std::vector<size_t>& sizes) {
    Model m;
    for (size_t i = 0; i < sizes.size(); ++i) {
      m.names.push_back(ObjectName{"default", prefix + "/" + std::to_string(i)});
      m.data.push_back(Pattern(sizes[i], 7000 + i));
    }
    return m;
  }
  static void ExpectAllOk(const std::vector<absl::Status>& outcomes) {
    for (size_t i = 0; i < outcomes.size(); ++i) EXPECT_TRUE(outcomes[i].ok()) << "entry " << i << ": " << outcomes[i];
  }
  // GetBatch on node `i` returns every object with its bytes; `pulled`: whether they came
  // from another node.
  static void ExpectGot(int i, const Model& m, bool pulled) {
    auto c = cluster_->Connect(i);
    absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> got = c->GetBatch(m.names, absl::Seconds(60));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), m.names.size());
    for (size_t k = 0; k < m.names.size(); ++k) {
      ASSERT_TRUE((*got)[k].ok()) << "node " << i << " " << m.names[k].key << ": " << (*got)[k].status();
      const ObjectView& v = *(*got)[k];
      ASSERT_EQ(v.size(), m.data[k].size()) << m.names[k].key;
      EXPECT_EQ(Checksum(v.data(), v.size()), Checksum(m.data[k].data(), m.data[k].size())) << m.names[k].key;
      EXPECT_EQ(v.info().pulled, pulled) << "node " << i << " " << m.names[k].key;
    }
  }
  static bool ExistsAnywhere(const ObjectName& name) {
    auto c = cluster_->Connect(0);
    absl::StatusOr<std::vector<ObjectInfo>> listed = c->List(name.ns, name.key);
    if (!listed.ok()) return true;
    for (const ObjectInfo& info : *listed) {
      if (info.name.key == name.key) return true;
    }
    return false;
  }

  static LocalCluster* cluster_;
};
LocalCluster* BatchOpsTest::cluster_ = nullptr;

TEST_F(BatchOpsTest, AModelPutInOneCallIsGotInOneCallOnAnotherNode) {
  // 500 small tensors (0 B to 16 KiB: inline in the directory, packed when pulled) and a few
  // of 100 KiB to 3 MiB (pulled in chunks).
  std::vector<size_t> sizes;
  for (int i = 0; i < 500; ++i) sizes.push_back((i * 977) % 16385);
  for (size_t big : {size_t{100} << 10, size_t{1} << 20, (size_t{3} << 20) + 7}) sizes.push_back(big);
  const Model m = MakeModel("model/v1", sizes);
  auto writer = cluster_->Connect(1);
  absl::StatusOr<std::vector<absl::Status>> put = writer->PutBatch(m.Entries());
  ASSERT_TRUE(put.ok()) << put.status();
  ASSERT_EQ(put->size(), sizes.size());
  ExpectAllOk(*put);
  ExpectGot(1, m, /*pulled=*/false);   // the writer's node holds them
  ExpectGot(2, m, /*pulled=*/true);    // moved as one batch
  ExpectGot(2, m, /*pulled=*/false);   // and now held there
  absl::StatusOr<std::vector<absl::Status>> del = writer->DeleteBatch(m.names);
  ASSERT_TRUE(del.ok()) << del.status();
  ExpectAllOk(*del);
}

TEST_F(BatchOpsTest, CreateBatchWritesInPlaceAndSealBatchPublishes) {
  auto c = cluster_->Connect(0);
  std::vector<ObjectName> names;
  std::vector<ObjectMeta> metas;
  for (int i = 0; i < 64; ++i) {
    names.push_back(ObjectName{"default", "zc/" + std::to_string(i)});
    ObjectMeta meta;
    meta.size = 4 * (i + 1);
    meta.dtype = DType::kF32;
    metas.push_back(meta);
  }
  absl::StatusOr<std::vector<absl::StatusOr<WritableObject>>> created = c->CreateBatch(names, metas);
  ASSERT_TRUE(created.ok()) << created.status();
  std::vector<WritableObject> objects;
  for (size_t i = 0; i < created->size(); ++i) {
    ASSERT_TRUE((*created)[i].ok()) << (*created)[i].status();
    WritableObject& w = *(*created)[i];
    for (size_t k = 0; k < w.size() / 4; ++k) {
      const float f = static_cast<float>(i * 1000 + k);
      std::memcpy(w.data() + 4 * k, &f, 4);
    }
    objects.push_back(std::move(w));
  }
  objects.emplace_back();   // an empty one fails alone
  absl::StatusOr<std::vector<absl::Status>> sealed = c->SealBatch(objects);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  ASSERT_EQ(sealed->size(), objects.size());
  for (size_t i = 0; i + 1 < objects.size(); ++i) {
    EXPECT_TRUE((*sealed)[i].ok()) << (*sealed)[i];
    EXPECT_EQ(objects[i].data(), nullptr) << "a sealed WritableObject is empty";
  }
  EXPECT_EQ(sealed->back().code(), absl::StatusCode::kFailedPrecondition) << sealed->back();
  auto other = cluster_->Connect(2);
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> got = other->GetBatch(names, absl::Seconds(30));
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_TRUE((*got)[i].ok()) << (*got)[i].status();
    EXPECT_EQ((*got)[i]->meta().dtype, DType::kF32);
    float last = 0;
    std::memcpy(&last, (*got)[i]->data() + (*got)[i]->size() - 4, 4);
    EXPECT_EQ(last, static_cast<float>(i * 1000 + i));
  }
  ExpectAllOk(*c->DeleteBatch(names));
}

TEST_F(BatchOpsTest, AnEntryThatFailsFailsAloneAndTheOthersComplete) {
  auto a = cluster_->Connect(0);
  auto b = cluster_->Connect(1);
  // Taken on another node: cluster-wide names.
  const std::vector<uint8_t> taken_bytes = Pattern(100, 1);
  ASSERT_TRUE(b->Put(ObjectName{"default", "mixed/1"}, taken_bytes).ok());
  const Model m = MakeModel("mixed", {10, 20, 30});
  absl::StatusOr<std::vector<absl::Status>> put = a->PutBatch(m.Entries());
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_TRUE((*put)[0].ok()) << (*put)[0];
  EXPECT_EQ((*put)[1].code(), absl::StatusCode::kAlreadyExists) << (*put)[1];
  EXPECT_THAT(std::string((*put)[1].message()), HasSubstr("mixed/1"));
  EXPECT_TRUE((*put)[2].ok()) << (*put)[2];

  // The taken one keeps its first bytes; an unknown one fails alone.
  std::vector<ObjectName> names = m.names;
  names.push_back(ObjectName{"default", "mixed/never"});
  auto c = cluster_->Connect(2);
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> got = c->GetBatch(names, absl::Milliseconds(500));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE((*got)[1].ok()) << (*got)[1].status();
  EXPECT_EQ(Checksum((*got)[1]->data(), (*got)[1]->size()), Checksum(taken_bytes.data(), taken_bytes.size()));
  ASSERT_TRUE((*got)[0].ok()) << (*got)[0].status();
  ASSERT_TRUE((*got)[2].ok()) << (*got)[2].status();
  EXPECT_EQ(Checksum((*got)[2]->data(), (*got)[2]->size()), Checksum(m.data[2].data(), m.data[2].size()));
  EXPECT_EQ((*got)[3].status().code(), absl::StatusCode::kDeadlineExceeded) << (*got)[3].status();
  EXPECT_THAT(std::string((*got)[3].status().message()), HasSubstr("mixed/never"));
  got->clear();
  // An entry that never appears, first in the batch, holds up none of the others.
  std::vector<ObjectName> reversed(names.rbegin(), names.rend());
  got = cluster_->Connect(1)->GetBatch(reversed, absl::Milliseconds(500));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].status().code(), absl::StatusCode::kDeadlineExceeded) << (*got)[0].status();
  for (int i = 1; i < 4; ++i) EXPECT_TRUE((*got)[i].ok()) << reversed[i].key << ": " << (*got)[i].status();
  got->clear();

  absl::StatusOr<std::vector<absl::Status>> del = a->DeleteBatch(names);
  ASSERT_TRUE(del.ok()) << del.status();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE((*del)[i].ok()) << (*del)[i];
  EXPECT_EQ((*del)[3].code(), absl::StatusCode::kNotFound) << (*del)[3];
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(ExistsAnywhere(names[i])) << names[i].key;
}

TEST_F(BatchOpsTest, GetBatchWaitsForObjectsCreatedAfterItStarted) {
  const Model m = MakeModel("late", {1000, 200000, 5});
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(300));
    auto w = cluster_->Connect(0);
    for (size_t i = 0; i < m.names.size(); ++i) {
      EXPECT_TRUE(w->Put(m.names[i], m.data[i]).ok());
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
  ExpectGot(2, m, /*pulled=*/true);
  writer.join();
  ExpectAllOk(*cluster_->Connect(1)->DeleteBatch(m.names));
}

TEST_F(BatchOpsTest, AGetBatchBeforeThePutBatchGetsTheModelInBatchPulls) {
  std::vector<size_t> sizes(300, 4096);
  sizes.push_back(1 << 20);
  const Model m = MakeModel("early", sizes);
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(300));
    absl::StatusOr<std::vector<absl::Status>> put = cluster_->Connect(0)->PutBatch(m.Entries());
    ASSERT_TRUE(put.ok()) << put.status();
    ExpectAllOk(*put);
  });
  ExpectGot(2, m, /*pulled=*/true);
  writer.join();
  ExpectAllOk(*cluster_->Connect(1)->DeleteBatch(m.names));
}

TEST_F(BatchOpsTest, DeleteBatchDropsEveryCopyOnEveryNode) {
  const Model m = MakeModel("del", {64, 70000, 3 << 20});
  ExpectAllOk(*cluster_->Connect(0)->PutBatch(m.Entries()));
  ExpectGot(1, m, true);
  ExpectGot(2, m, true);
  absl::StatusOr<std::vector<absl::Status>> del = cluster_->Connect(2)->DeleteBatch(m.names);
  ASSERT_TRUE(del.ok()) << del.status();
  ExpectAllOk(*del);
  for (int node = 0; node < 3; ++node) {
    auto c = cluster_->Connect(node);
    absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> got = c->GetBatch(m.names, absl::Milliseconds(200));
    ASSERT_TRUE(got.ok()) << got.status();
    for (size_t k = 0; k < m.names.size(); ++k) {
      EXPECT_FALSE((*got)[k].ok()) << "node " << node << " still returns " << m.names[k].key;
    }
  }
  // The names can be used again.
  ExpectAllOk(*cluster_->Connect(1)->PutBatch(m.Entries()));
  ExpectAllOk(*cluster_->Connect(1)->DeleteBatch(m.names));
}

TEST_F(BatchOpsTest, MalformedBatchesAreRefusedWholeWithNothingStored) {
  auto c = cluster_->Connect(0);
  const std::vector<uint8_t> bytes = Pattern(16, 3);
  auto expect_refused = [&](std::vector<Client::PutEntry> entries, absl::StatusCode code, const std::string& says) {
    absl::StatusOr<std::vector<absl::Status>> r = c->PutBatch(entries);
    ASSERT_FALSE(r.ok()) << "batch accepted; expected: " << says;
    EXPECT_EQ(r.status().code(), code) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(says));
    for (const Client::PutEntry& e : entries) {
      if (!e.name.key.empty()) {
        EXPECT_FALSE(ExistsAnywhere(e.name)) << e.name.key;
      }
    }
  };
  expect_refused({}, absl::StatusCode::kInvalidArgument, "names no objects");
  expect_refused({{{"default", "dup/a"}, bytes}, {{"default", "dup/b"}, bytes}, {{"default", "dup/a"}, bytes}},
                 absl::StatusCode::kInvalidArgument, "dup/a");
  expect_refused({{{"default", "ns/a"}, bytes}, {{"other", "ns/b"}, bytes}}, absl::StatusCode::kInvalidArgument,
                 "namespace");
  expect_refused({{{"default", "bad/a"}, bytes}, {{"default", ""}, bytes}}, absl::StatusCode::kInvalidArgument,
                 "entry 1");
  // 12 bytes are not whole f64 elements.
  expect_refused({{{"default", "meta/a"}, bytes}, {{"default", "meta/b"}, std::span(bytes).first(12), DType::kF64}},
                 absl::StatusCode::kInvalidArgument, "entry 1");
  // More than the 128 MiB arena in total, though each object would fit.
  std::vector<uint8_t> big(48 << 20, 1);
  expect_refused({{{"default", "huge/a"}, big}, {{"default", "huge/b"}, big}, {{"default", "huge/c"}, big}},
                 absl::StatusCode::kResourceExhausted, "arena");

  std::vector<ObjectName> names = {{"default", "x"}};
  std::vector<ObjectMeta> metas;
  absl::StatusOr<std::vector<absl::StatusOr<WritableObject>>> created = c->CreateBatch(names, metas);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << created.status();
  EXPECT_EQ(c->GetBatch({}, absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<ObjectName> dup = {{"default", "d"}, {"default", "d"}};
  EXPECT_EQ(c->GetBatch(dup, absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->DeleteBatch(dup).status().code(), absl::StatusCode::kInvalidArgument);
}

// The coordinator's batch RPCs, spoken to directly (as a buggy or hostile peer would).
TEST_F(BatchOpsTest, CoordinatorBatchRpcsValidateWhatTheyReceive) {
  auto channel = grpc::CreateChannel(cluster_->coord_address(), grpc::InsecureChannelCredentials());
  auto stub = proto::Coordinator::NewStub(channel);
  auto call_status = [](auto method) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return method(&ctx);
  };
  {
    proto::PublishBatchRequest req;
    req.set_node_id(12345);   // not a registered node
    proto::PublishRequest* e = req.add_entries();
    e->mutable_ref()->set_ns("default");
    e->mutable_ref()->set_key("rogue");
    e->mutable_meta()->set_size(0);
    proto::PublishBatchReply reply;
    grpc::Status s = call_status([&](grpc::ClientContext* ctx) { return stub->PublishBatch(ctx, req, &reply); });
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    *req.add_entries() = req.entries(0);   // the same name twice
    s = call_status([&](grpc::ClientContext* ctx) { return stub->PublishBatch(ctx, req, &reply); });
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_FALSE(ExistsAnywhere({"default", "rogue"}));
  }
  {
    proto::DeleteBatchRequest req;
    proto::DeleteBatchReply reply;
    grpc::Status s = call_status([&](grpc::ClientContext* ctx) { return stub->DeleteBatch(ctx, req, &reply); });
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    req.add_refs()->set_ns("default");   // empty key
    s = call_status([&](grpc::ClientContext* ctx) { return stub->DeleteBatch(ctx, req, &reply); });
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  }
  {
    proto::ExistsRequest req;
    proto::ObjectRef* ref = req.add_refs();
    ref->set_ns("default");
    ref->set_key("nobody/has/this");
    proto::ExistsReply reply;
    grpc::Status s = call_status([&](grpc::ClientContext* ctx) { return stub->Exists(ctx, req, &reply); });
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(reply.exists_size(), 1);
    EXPECT_FALSE(reply.exists(0));
    ref->set_ns("bad namespace!");
    s = call_status([&](grpc::ClientContext* ctx) { return stub->Exists(ctx, req, &reply); });
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  }
}

// A GetBatch that arrives while a batch broadcast of the same objects is moving them joins that
// batch's chain (it pulls from the broadcast's newest target, cut-through, not from the source)
// and gets every byte. Pulls are capped at 40 MiB/s so the broadcast is still running.
TEST(BatchJoinTest, AGetBatchDuringABatchBroadcastJoinsItsChain) {
  ClusterOptions o;
  o.nodes = 3;
  o.arena = "128MiB";
  o.ferryd_flags = {"--max-pull-rate", "40MiB"};
  LocalCluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << "cluster did not start; logs in " << cluster.dir();
  std::vector<ObjectName> names;
  std::vector<std::vector<uint8_t>> data;
  std::vector<Client::PutEntry> entries;
  for (int i = 0; i < 4; ++i) {
    names.push_back(ObjectName{"default", "join/" + std::to_string(i)});
    data.push_back(Pattern(8 << 20, 900 + i));
  }
  for (int i = 0; i < 4; ++i) entries.push_back({names[i], data[i]});
  auto root = cluster.Connect(0);
  absl::StatusOr<std::vector<absl::Status>> put = root->PutBatch(entries);
  ASSERT_TRUE(put.ok()) << put.status();
  for (const absl::Status& s : *put) ASSERT_TRUE(s.ok()) << s;

  absl::StatusOr<BatchBroadcastResult> pushed;
  std::thread push([&] { pushed = root->BroadcastBatch(names, {"n1"}, absl::Seconds(60)); });
  absl::SleepFor(absl::Milliseconds(200));
  auto late = cluster.Connect(2);
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> got = late->GetBatch(names, absl::Seconds(60));
  push.join();
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_TRUE(pushed->ok()) << (pushed->targets.empty() ? "" : pushed->targets[0].error);
  ASSERT_TRUE(got.ok()) << got.status();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE((*got)[i].ok()) << (*got)[i].status();
    EXPECT_EQ(Checksum((*got)[i]->data(), (*got)[i]->size()), Checksum(data[i].data(), data[i].size()));
  }
  std::ifstream log(cluster.dir() + "/coord.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("joining the batch in flight")) << "log in " << cluster.dir();
}

// A node holding more small objects than one Hello may carry (24 MiB of 40 KiB objects, whose
// bytes the Hello re-reports, against the coordinator's 16 MiB message limit) registers again
// after being declared dead, and after a coordinator restart its objects are published again
// with their bytes, so other nodes still get them.
TEST(RejoinTest, ANodeHoldingManySmallObjectsRegistersAgain) {
  ClusterOptions o;
  o.nodes = 3;
  o.arena = "128MiB";
  LocalCluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << "cluster did not start; logs in " << cluster.dir();
  std::vector<ObjectName> names;
  std::vector<std::vector<uint8_t>> data;
  std::vector<Client::PutEntry> entries;
  for (int i = 0; i < 600; ++i) {
    names.push_back(ObjectName{"default", "rejoin/" + std::to_string(i)});
    data.push_back(Pattern(40 << 10, 5000 + i));
  }
  for (int i = 0; i < 600; ++i) entries.push_back({names[i], data[i]});
  {
    auto c = cluster.Connect(1);
    absl::StatusOr<std::vector<absl::Status>> put = c->PutBatch(entries);
    ASSERT_TRUE(put.ok()) << put.status();
    for (const absl::Status& s : *put) ASSERT_TRUE(s.ok()) << s;
  }
  // Declared dead (silent past the liveness timeout), then back.
  cluster.Signal(1, SIGSTOP);
  ASSERT_TRUE(cluster.WaitAlive(0, 2, absl::Seconds(20)).ok()) << "node 1 was not declared dead";
  cluster.Signal(1, SIGCONT);
  ASSERT_TRUE(cluster.WaitAlive(0, 3, absl::Seconds(20)).ok()) << "node 1 did not register again; logs in " << cluster.dir();
  // The coordinator restarts: its directory is rebuilt from the nodes' reports alone.
  cluster.KillCoordinator(SIGKILL);
  ASSERT_TRUE(cluster.RestartCoordinator().ok());
  ASSERT_TRUE(cluster.WaitAlive(0, 3, absl::Seconds(30)).ok()) << "logs in " << cluster.dir();
  auto other = cluster.Connect(2);
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> got = other->GetBatch(names, absl::Seconds(30));
  ASSERT_TRUE(got.ok()) << got.status();
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE((*got)[i].ok()) << names[i].key << ": " << (*got)[i].status() << "; logs in " << cluster.dir();
    ASSERT_EQ(Checksum((*got)[i]->data(), (*got)[i]->size()), Checksum(data[i].data(), data[i].size()));
  }
}

}  // namespace
}  // namespace ferry::testing
