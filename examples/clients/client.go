// Calling genserv from Go with net/http, the standard library only: go run client.go
// GENSERV_URL is genserv's address (default http://127.0.0.1:8080); GENSERV_TOKEN, when set,
// is sent as a bearer token.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

var (
	url   = envOr("GENSERV_URL", "http://127.0.0.1:8080")
	token = os.Getenv("GENSERV_TOKEN")
)

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// answer is every body genserv sends back: a reply, or an error and its message.
type answer struct {
	Reply   json.RawMessage `json:"reply"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// post POSTs a JSON body and returns the HTTP status and the decoded answer, errors included.
func post(path string, body any, wait time.Duration) (int, answer) {
	payload, err := json.Marshal(body)
	if err != nil {
		log.Fatal(err)
	}
	req, err := http.NewRequest("POST", url+path, bytes.NewReader(payload))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: wait}).Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		log.Fatal(err)
	}
	return resp.StatusCode, a
}

// call is GenServer.call/3: genserv enforces timeoutMs; the client waits 5 s longer.
func call(server string, message any, timeoutMs int) (int, answer) {
	body := map[string]any{"server": server, "message": message, "timeout_ms": timeoutMs}
	return post("/call", body, time.Duration(timeoutMs)*time.Millisecond+5*time.Second)
}

func reply(status int, a answer) string {
	if status != http.StatusOK {
		log.Fatalf("unexpected answer %d: %s: %s", status, a.Error, a.Message)
	}
	return string(a.Reply)
}

func main() {
	fmt.Println("call counter get_count ->", reply(call("counter", "get_count", 5000)))
	status, _ := post("/cast", map[string]any{"server": "counter", "message": "increment"}, 10*time.Second)
	fmt.Println("cast counter increment ->", status)
	fmt.Println("call counter get_count ->", reply(call("counter", "get_count", 5000)))

	// A deferred reply: the batcher holds the call until its next flush (once a second).
	fmt.Println(`call batcher ["push", 5] ->`, reply(call("batcher", []any{"push", 5}, 10000)))

	// No reply within timeout_ms: 504 and the error "timeout" (a late reply is dropped).
	status, a := call("slow", []any{"sleep", 2000}, 300)
	fmt.Println(`call slow ["sleep", 2000] with timeout_ms 300 ->`, status, a.Error)

	// Every error is a status and a JSON body {"error": CODE, "message": TEXT}.
	status, a = call("nosuch", "get_count", 5000)
	fmt.Printf("call nosuch get_count -> %d %s: %s\n", status, a.Error, a.Message)
}
