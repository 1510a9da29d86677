# Calling genserv from Elixir with :httpc (OTP's inets), no Hex package: elixir client.exs
# GENSERV_URL is genserv's address (default http://127.0.0.1:8080); GENSERV_TOKEN, when set,
# is sent as a bearer token. In a Mix project, Req does the same in fewer lines.

defmodule MiniJSON do
  # Elixir before 1.18 has no JSON module and Jason is a Hex package: just enough JSON for
  # these examples (Elixir 1.18's JSON.encode!/1 and JSON.decode!/1 replace it).
  def encode(nil), do: "null"
  def encode(b) when is_boolean(b), do: to_string(b)
  def encode(n) when is_number(n), do: to_string(n)
  def encode(a) when is_atom(a), do: encode(Atom.to_string(a))
  def encode(l) when is_list(l), do: "[" <> Enum.map_join(l, ",", &encode/1) <> "]"
  def encode(m) when is_map(m), do: "{" <> Enum.map_join(m, ",", &member/1) <> "}"

  def encode(s) when is_binary(s),
    do: ~s(") <> for(<<c::utf8 <- s>>, into: "", do: escape(c)) <> ~s(")

  defp member({key, value}), do: encode(to_string(key)) <> ":" <> encode(value)

  defp escape(?"), do: "\\\""
  defp escape(?\\), do: "\\\\"
  defp escape(c) when c < 0x20, do: "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")
  defp escape(c), do: <<c::utf8>>

  def decode(text) do
    {value, rest} = value(skip(text))
    "" = skip(rest)
    value
  end

  defp skip(<<c, rest::binary>>) when c in ~c" \t\r\n", do: skip(rest)
  defp skip(text), do: text

  defp value("{" <> rest), do: members(skip(rest), %{})
  defp value("[" <> rest), do: elements(skip(rest), [])
  defp value("\"" <> rest), do: string(rest, "")
  defp value("true" <> rest), do: {true, rest}
  defp value("false" <> rest), do: {false, rest}
  defp value("null" <> rest), do: {nil, rest}

  defp value(text) do
    [number] = Regex.run(~r/^-?\d+(\.\d+)?([eE][-+]?\d+)?/, text, capture: :first)
    rest = binary_part(text, byte_size(number), byte_size(text) - byte_size(number))

    case Integer.parse(number) do
      {n, ""} -> {n, rest}
      _ -> {elem(Float.parse(number), 0), rest}
    end
  end

  defp members("}" <> rest, map), do: {map, rest}

  defp members(text, map) do
    {key, rest} = value(text)
    ":" <> rest = skip(rest)
    {val, rest} = value(skip(rest))

    case skip(rest) do
      "," <> rest -> members(skip(rest), Map.put(map, key, val))
      "}" <> rest -> {Map.put(map, key, val), rest}
    end
  end

  defp elements("]" <> rest, list), do: {Enum.reverse(list), rest}

  defp elements(text, list) do
    {val, rest} = value(text)

    case skip(rest) do
      "," <> rest -> elements(skip(rest), [val | list])
      "]" <> rest -> {Enum.reverse([val | list]), rest}
    end
  end

  @escapes %{
    ?" => ?",
    ?\\ => ?\\,
    ?/ => ?/,
    ?b => ?\b,
    ?f => ?\f,
    ?n => ?\n,
    ?r => ?\r,
    ?t => ?\t
  }
  defp string("\"" <> rest, acc), do: {acc, rest}

  defp string("\\u" <> <<hex::binary-4, rest::binary>>, acc) do
    case {String.to_integer(hex, 16), rest} do
      {hi, "\\u" <> <<lo::binary-4, rest::binary>>} when hi in 0xD800..0xDBFF ->
        <<c::utf16>> = <<hi::16, String.to_integer(lo, 16)::16>>
        string(rest, acc <> <<c::utf8>>)

      {c, rest} ->
        string(rest, acc <> <<c::utf8>>)
    end
  end

  defp string(<<?\\, c, rest::binary>>, acc),
    do: string(rest, <<acc::binary, Map.fetch!(@escapes, c)>>)

  defp string(<<c, rest::binary>>, acc), do: string(rest, <<acc::binary, c>>)
end

defmodule Genserv do
  def url, do: System.get_env("GENSERV_URL", "http://127.0.0.1:8080")

  # POSTs a JSON body; returns {HTTP status, decoded JSON answer}, errors included.
  def post(path, body, wait_ms \\ 10_000) do
    headers =
      case System.get_env("GENSERV_TOKEN") do
        token when token in [nil, ""] -> []
        token -> [{~c"authorization", String.to_charlist("Bearer " <> token)}]
      end

    request =
      {String.to_charlist(url() <> path), headers, ~c"application/json", MiniJSON.encode(body)}

    {:ok, {{_, status, _}, _, answer}} =
      :httpc.request(:post, request, [timeout: wait_ms], body_format: :binary)

    {status, MiniJSON.decode(answer)}
  end

  # GenServer.call/3: genserv enforces timeout_ms; the client waits 5 s longer.
  def call(server, message, timeout_ms \\ 5000) do
    post("/call", %{server: server, message: message, timeout_ms: timeout_ms}, timeout_ms + 5000)
  end

  def reply({200, %{"reply" => reply}}), do: MiniJSON.encode(reply)
  def reply({status, answer}), do: raise("unexpected answer #{status}: #{inspect(answer)}")
end

{:ok, _} = Application.ensure_all_started(:inets)

IO.puts("call counter get_count -> " <> Genserv.reply(Genserv.call("counter", "get_count")))
{status, _} = Genserv.post("/cast", %{server: "counter", message: "increment"})
IO.puts("cast counter increment -> #{status}")
IO.puts("call counter get_count -> " <> Genserv.reply(Genserv.call("counter", "get_count")))

# A deferred reply: the batcher holds the call until its next flush (once a second).
pushed = Genserv.call("batcher", ["push", 5], 10_000)
IO.puts(~s(call batcher ["push", 5] -> ) <> Genserv.reply(pushed))

# No reply within timeout_ms: 504 and the error "timeout" (a late reply is dropped).
{status, answer} = Genserv.call("slow", ["sleep", 2000], 300)
IO.puts(~s(call slow ["sleep", 2000] with timeout_ms 300 -> #{status} #{answer["error"]}))

# Every error is a status and a JSON body {"error": CODE, "message": TEXT}.
{status, answer} = Genserv.call("nosuch", "get_count")
IO.puts("call nosuch get_count -> #{status} #{answer["error"]}: #{answer["message"]}")
