// The reference of tests/bench/rpc-h2load.py: a minimal gRPC C++ server
// (libgrpc++, callback API, generic service: no generated code) that
// answers every unary call with the same message bytes, read from a file.
//
//   rpc-ref-server ADDRESS REPLY-FILE
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

namespace {

// One call: read the request, answer the canned reply, finish OK.
class Reactor : public grpc::ServerGenericBidiReactor {
 public:
  explicit Reactor(const grpc::ByteBuffer *reply) : reply_(reply) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "no request"));
      return;
    }
    StartWriteAndFinish(reply_, grpc::WriteOptions(), grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer request_;
  const grpc::ByteBuffer *reply_;
};

class Service : public grpc::CallbackGenericService {
 public:
  explicit Service(const std::string &bytes) {
    grpc::Slice s(bytes.data(), bytes.size());
    reply_ = grpc::ByteBuffer(&s, 1);
  }
  grpc::ServerGenericBidiReactor *CreateReactor(
      grpc::GenericCallbackServerContext *) override {
    return new Reactor(&reply_);
  }

 private:
  grpc::ByteBuffer reply_;
};

}  // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::cerr << "usage: rpc-ref-server ADDRESS REPLY-FILE\n";
    return 2;
  }
  std::ifstream f(argv[2], std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)),
                    std::istreambuf_iterator<char>());
  Service service(bytes);
  grpc::ServerBuilder b;
  b.AddListeningPort(argv[1], grpc::InsecureServerCredentials());
  b.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server)
    return 1;
  server->Wait();
  return 0;
}
