// SPDX-License-Identifier: LGPL-2.1-or-later
// The reference of tests/bench/rpc-h2load.py: a minimal gRPC C++ server
// (libgrpc++, callback API, generic service: no generated code) that
// answers every unary call with the same message bytes, read from a file;
// cleartext on ADDRESS and, given the three last arguments, TLS too.
//
//   rpc-ref-server ADDRESS REPLY-FILE [TLS-ADDRESS CERT-PEM KEY-PEM]
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

std::string slurp(const char *path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)),
                     std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 3 && argc != 6) {
    std::cerr << "usage: rpc-ref-server ADDRESS REPLY-FILE "
                 "[TLS-ADDRESS CERT-PEM KEY-PEM]\n";
    return 2;
  }
  Service service(slurp(argv[2]));
  grpc::ServerBuilder b;
  b.AddListeningPort(argv[1], grpc::InsecureServerCredentials());
  if (argc == 6) {
    grpc::SslServerCredentialsOptions tls;
    tls.pem_key_cert_pairs.push_back({slurp(argv[5]), slurp(argv[4])});
    b.AddListeningPort(argv[3], grpc::SslServerCredentials(tls));
  }
  b.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server)
    return 1;
  server->Wait();
  return 0;
}
