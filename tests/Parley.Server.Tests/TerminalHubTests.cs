using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>
/// Terminal sessions on a real hub with identity on (docs/protocol.md §17): an owner streaming its recording as
/// offset-prefixed binary pushes, viewers that join late and splice backfill and live output at the seam,
/// byte-exact fetches, input permissions, a stalled viewer, the registry and bad input.
/// </summary>
public sealed class TerminalHubTests : AuthenticatedHubTest
{
    protected override void ConfigureServer(ServerOptions options)
    {
        options.Terminals.OwnerGrace = TimeSpan.FromSeconds(1);
        options.Terminals.UpdateInterval = TimeSpan.FromMilliseconds(200);
    }

    private static JsonObject Hello(bool allowInput = false) => new()
    {
        ["role"] = "owner",
        ["name"] = "build",
        ["command"] = new JsonArray("make", "-j2"),
        ["cols"] = 100,
        ["rows"] = 30,
        ["pid"] = 4242,
        ["started_at"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        ["allow_input"] = allowInput,
    };

    private async Task<ParleyClient> OwnerAsync(string token, string id, bool allowInput = false)
    {
        var owner = await ConnectAsync(token);
        var joined = await owner.JoinAsync("term:" + id, joinParams: Hello(allowInput));
        Assert.True(joined.IsOk, joined.Response.ToString());
        return owner;
    }

    private static byte[] Chunk(long offset, ReadOnlySpan<byte> data)
    {
        var payload = new byte[8 + data.Length];
        BinaryPrimitives.WriteInt64BigEndian(payload, offset);
        data.CopyTo(payload.AsSpan(8));
        return payload;
    }

    private static async Task<long> RecordAsync(ParleyClient owner, string id, long offset, ReadOnlyMemory<byte> data, string @event = "record_output")
    {
        var reply = await owner.PushBinaryAsync("term:" + id, @event, Chunk(offset, data.Span));
        Assert.True(reply.IsOk, reply.Response.ToString());
        return reply.Response.GetProperty("size").GetInt64();
    }

    private static async Task<byte[]> FetchAsync(ParleyClient viewer, string id, long offset, int limit, string @event = "fetch_output")
    {
        var reply = await viewer.PushAsync("term:" + id, @event, new { offset, limit });
        Assert.True(reply.IsOk, reply.Response.ToString());
        return reply.Binary.ToArray();
    }

    // Deterministic bytes of every value, invalid UTF-8 included.
    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task A_late_viewer_backfills_to_the_seam_and_then_sees_live_output_with_no_gap_and_no_overlap()
    {
        var owner = await OwnerAsync(await TokenAsync("alice"), "seam");
        var all = Pattern(400_000, 1);
        long written = 0;
        // The owner writes 1–3 KiB chunks without pause while the viewer joins in the middle of it.
        var writer = Task.Run(async () =>
        {
            var random = new Random(2);
            while (written < all.Length)
            {
                var n = (int)Math.Min(random.Next(1024, 3072), all.Length - written);
                written = await RecordAsync(owner, "seam", written, all.AsMemory((int)written, n));
            }
        });
        while (Volatile.Read(ref written) < 100_000)
        {
            await Task.Delay(5);
        }
        var viewer = await ConnectAsUserAsync("bob");
        var joined = await viewer.JoinAsync("term:seam");
        Assert.True(joined.IsOk, joined.Response.ToString());
        var seam = joined.Response.GetProperty("output_size").GetInt64();
        Assert.False(joined.Response.GetProperty("can_input").GetBoolean());
        Assert.Equal(("build", "alice", 100, 30), (joined.Response.GetProperty("name").GetString(), joined.Response.GetProperty("owner").GetString(),
            joined.Response.GetProperty("cols").GetInt32(), joined.Response.GetProperty("rows").GetInt32()));
        await writer;

        var screen = new MemoryStream();
        for (long at = 0; at < seam;)
        {
            // Up to the seam only: the output has grown since, and what follows it comes live.
            var part = await FetchAsync(viewer, "seam", at, (int)Math.Min(64 * 1024, seam - at));
            screen.Write(part);
            at += part.Length;
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (screen.Length < all.Length)
        {
            var message = await viewer.Messages.ReadAsync(timeout.Token);
            if (message.Topic == "term:seam" && message.Event == "output")
            {
                Assert.True(message.IsBinary);
                screen.Write(message.Binary.Span);
            }
        }
        Assert.Equal(all.Length, screen.Length);
        Assert.True(all.AsSpan().SequenceEqual(screen.ToArray()), "backfill + live output differs from what the owner recorded");
    }

    [Fact]
    public async Task Fetches_are_byte_exact_ranges_and_the_hub_appends_only_what_it_lacks()
    {
        var owner = await OwnerAsync(await TokenAsync("alice"), "exact");
        var output = Pattern(150_000, 3);
        Assert.Equal(50_000, await RecordAsync(owner, "exact", 0, output.AsMemory(0, 50_000)));
        Assert.Equal(100_000, await RecordAsync(owner, "exact", 50_000, output.AsMemory(50_000, 50_000)));
        // A chunk resent after a reconnect overlaps what the hub holds: only its new part is appended.
        Assert.Equal(120_000, await RecordAsync(owner, "exact", 90_000, output.AsMemory(90_000, 30_000)));
        // One past the end would leave a gap: ignored, and the reply says where to continue.
        Assert.Equal(120_000, await RecordAsync(owner, "exact", 130_000, output.AsMemory(130_000, 10_000)));
        Assert.Equal(150_000, await RecordAsync(owner, "exact", 120_000, output.AsMemory(120_000, 30_000)));
        var input = Encoding.UTF8.GetBytes("ls -la\r\x03\x1b[A");
        Assert.Equal(input.Length, await RecordAsync(owner, "exact", 0, input, "record_input"));

        var viewer = await ConnectAsUserAsync("bob");
        Assert.True((await viewer.JoinAsync("term:exact")).IsOk);
        var random = new Random(4);
        for (var i = 0; i < 40; i++)
        {
            var offset = random.Next(0, 160_000);
            var limit = random.Next(1, 70_000);
            var expected = offset >= output.Length ? [] : output.AsSpan(offset, Math.Min(limit, output.Length - offset)).ToArray();
            Assert.Equal(expected, await FetchAsync(viewer, "exact", offset, limit));
        }
        Assert.Equal(input, await FetchAsync(viewer, "exact", 0, 1000, "fetch_input"));
        var meta = await viewer.PushAsync("term:exact", "get_meta", new { });
        Assert.Equal((150_000L, (long)input.Length, 4242), (meta.Response.GetProperty("output_size").GetInt64(), meta.Response.GetProperty("input_size").GetInt64(), meta.Response.GetProperty("pid").GetInt32()));
        Assert.Equal("make -j2", string.Join(' ', meta.Response.GetProperty("command").EnumerateArray().Select(e => e.GetString())));

        // The hub's copy on disk is the same bytes.
        Assert.Equal(output, await File.ReadAllBytesAsync(Path.Combine(Hub.DataDir, "terminals", "exact.output")));
    }

    [Fact]
    public async Task Input_is_refused_to_a_read_only_viewer_until_the_owner_grants_it_and_then_reaches_the_owner_in_order()
    {
        var owner = await OwnerAsync(await TokenAsync("alice"), "typed");
        var bob = await ConnectAsUserAsync("bob");
        var carol = await ConnectAsUserAsync("carol");
        Assert.True((await bob.JoinAsync("term:typed")).IsOk);
        Assert.True((await carol.JoinAsync("term:typed")).IsOk);

        var refused = await bob.PushAsync("term:typed", "input", new { data_b64 = Convert.ToBase64String("rm -rf /\r"u8.ToArray()) });
        Assert.Equal("forbidden", refused.Reason);
        Assert.Equal("forbidden", (await bob.PushAsync("term:typed", "resize", new { cols = 10, rows = 5 })).Reason);

        Assert.True((await owner.PushAsync("term:typed", "grant", new { user = "bob", input = true })).IsOk);
        await bob.LeaveAsync("term:typed");
        var joined = await bob.JoinAsync("term:typed");
        Assert.True(joined.Response.GetProperty("can_input").GetBoolean());
        for (var i = 0; i < 20; i++)
        {
            Assert.True((await bob.PushAsync("term:typed", "input", new { data_b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes($"k{i};")) })).IsOk);
        }
        Assert.True((await bob.PushAsync("term:typed", "resize", new { cols = 120, rows = 40 })).IsOk);
        Assert.Equal("forbidden", (await carol.PushAsync("term:typed", "input", new { data_b64 = "eA==" })).Reason);

        var typed = new StringBuilder();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        JsonElement resize = default;
        while (resize.ValueKind == JsonValueKind.Undefined)
        {
            var message = await owner.Messages.ReadAsync(timeout.Token);
            if (message.Event == "input")
            {
                Assert.Equal("bob", message.Payload.GetProperty("from").GetString());
                typed.Append(Encoding.UTF8.GetString(Convert.FromBase64String(message.Payload.GetProperty("data_b64").GetString()!)));
            }
            else if (message.Event == "resize_request")
            {
                resize = message.Payload;
            }
        }
        Assert.Equal(string.Concat(Enumerable.Range(0, 20).Select(i => $"k{i};")), typed.ToString());
        Assert.Equal((120, 40, "bob"), (resize.GetProperty("cols").GetInt32(), resize.GetProperty("rows").GetInt32(), resize.GetProperty("from").GetString()));

        // Revoked: refused again. A session started with allow_input lets every member type.
        Assert.True((await owner.PushAsync("term:typed", "grant", new { user = "bob", input = false })).IsOk);
        Assert.Equal("forbidden", (await bob.PushAsync("term:typed", "input", new { data_b64 = "eA==" })).Reason);
        await OwnerAsync(await TokenAsync("dave"), "open", allowInput: true);
        Assert.True((await carol.JoinAsync("term:open")).Response.GetProperty("can_input").GetBoolean());
        Assert.True((await carol.PushAsync("term:open", "input", new { data_b64 = "eA==" })).IsOk);
    }

    [Fact]
    public async Task Bad_input_gets_a_clear_error_and_the_session_keeps_serving()
    {
        var aliceToken = await TokenAsync("alice");
        var owner = await OwnerAsync(aliceToken, "strict");
        var viewer = await ConnectAsUserAsync("bob");
        Assert.True((await viewer.JoinAsync("term:strict")).IsOk);

        async Task Refused(ParleyClient client, string @event, object payload, string reason)
        {
            var reply = await client.PushAsync("term:strict", @event, payload);
            Assert.False(reply.IsOk, $"{@event} {JsonSerializer.Serialize(payload)} was accepted");
            Assert.Equal(reason, reply.Reason);
        }
        await Refused(owner, "record_output", new { data = "not binary" }, "invalid_payload");
        Assert.Equal("invalid_payload", (await owner.PushBinaryAsync("term:strict", "record_output", new byte[5])).Reason);
        Assert.Equal("invalid_payload", (await owner.PushBinaryAsync("term:strict", "record_output", Chunk(-1, "x"u8))).Reason);
        await Refused(owner, "resize", new { cols = "wide", rows = 10 }, "invalid_payload");
        await Refused(owner, "resize", new { cols = 0, rows = 10 }, "invalid_payload");
        await Refused(owner, "grant", new { user = 7 }, "invalid_payload");
        await Refused(owner, "exit", new { exit_code = "zero" }, "invalid_payload");
        await Refused(owner, "nonsense", new { }, "unknown_event");
        await Refused(viewer, "fetch_output", new { offset = -5, limit = 10 }, "invalid_payload");
        await Refused(viewer, "fetch_output", new { offset = 0, limit = 2 * 1024 * 1024 }, "invalid_payload");
        await Refused(viewer, "fetch_output", new { offset = "0", limit = 10 }, "invalid_payload");
        await Refused(viewer, "record_output", new { }, "unknown_event");
        await Refused(viewer, "input", new { data_b64 = "eA==" }, "forbidden");

        // Join errors: no such session, an id out of the rules, a role out of the rules, someone else's session.
        var other = await ConnectAsUserAsync("mallory");
        Assert.Equal("session_not_found", (await other.JoinAsync("term:nope")).Reason);
        Assert.Equal("invalid_topic", (await other.JoinAsync("term:Bad Id")).Reason);
        Assert.Equal("invalid_payload", (await other.JoinAsync("term:strict-2", joinParams: new JsonObject { ["role"] = "boss" })).Reason);
        Assert.Equal("invalid_payload", (await other.JoinAsync("term:strict-3", joinParams: new JsonObject { ["role"] = "owner", ["cols"] = 10 })).Reason);
        Assert.Equal("forbidden", (await other.JoinAsync("term:strict", joinParams: Hello())).Reason);

        // After all that, the session still records and serves.
        Assert.Equal(5, await RecordAsync(owner, "strict", 0, "hello"u8.ToArray()));
        Assert.Equal("hello"u8.ToArray(), await FetchAsync(viewer, "strict", 0, 100));
    }

    [Fact]
    public async Task A_stalled_viewer_does_not_slow_the_owner_and_gets_a_resync_to_catch_up_from()
    {
        var aliceToken = await TokenAsync("alice");
        var owner = await OwnerAsync(aliceToken, "stall");
        var chunk = Pattern(60 * 1024, 5);
        const int Chunks = 160; // ~9.4 MiB, several times the 2 MiB viewer queue
        async Task<TimeSpan> WriteAsync(long from)
        {
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < Chunks; i++)
            {
                await RecordAsync(owner, "stall", from + (long)i * chunk.Length, chunk);
            }
            return clock.Elapsed;
        }
        var alone = await WriteAsync(0);

        var (stalled, response) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=" + Uri.EscapeDataString(await TokenAsync("bob")), receiveBufferBytes: 4096);
        Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
        await using var _ = stalled;
        await stalled.JoinAsync("term:stall");
        using var stopBeating = new CancellationTokenSource();
        var heartbeat = Task.Run(async () =>
        {
            while (!stopBeating.IsCancellationRequested)
            {
                await stalled.PushAsync(null, "phoenix", "heartbeat", new { });
                await Task.Delay(500);
            }
        });
        var stalledAt = (long)Chunks * chunk.Length;
        var withStalled = await WriteAsync(stalledAt);
        var end = stalledAt * 2;

        var viewer = await ConnectAsUserAsync("carol");
        Assert.True((await viewer.JoinAsync("term:stall")).IsOk);
        var stats = (await viewer.PushAsync("term:stall", "get_stats", new { })).Response;
        Assert.True(stats.GetProperty("drops").GetInt64() > 0, stats.ToString());
        Assert.True(stats.GetProperty("backlog_high_water").GetInt64() >= 1024 * 1024, stats.ToString());
        Assert.Equal(end, stats.GetProperty("bytes_in").GetInt64());
        // Loose on purpose (a loaded 2-core machine): a stalled viewer must not make the owner wait for it.
        Assert.True(withStalled < alone * 3 + TimeSpan.FromSeconds(2), $"alone {alone.TotalMilliseconds:0} ms, with a stalled viewer {withStalled.TotalMilliseconds:0} ms");

        // The stalled viewer reads again: the output frames that were queued, then resync {offset} — never a silent gap.
        var received = 0L;
        long? resyncAt = null;
        while (resyncAt is null)
        {
            var frame = await stalled.ReadFrameAsync(TimeSpan.FromSeconds(20));
            Assert.False(frame.IsClose, $"closed: {frame.CloseCode} {frame.CloseReason}");
            if (frame.Opcode == 0x2)
            {
                received += frame.Payload.Length;
            }
            else if (frame.Event == "resync")
            {
                resyncAt = frame.Payload_!["offset"]!.GetValue<long>();
            }
        }
        Assert.True(received < end - stalledAt, "every byte reached the stalled viewer: nothing was dropped");
        Assert.Equal(end, resyncAt);
        await stopBeating.CancelAsync();
        await heartbeat;
        var after = (await viewer.PushAsync("term:stall", "get_stats", new { })).Response;
        Assert.True(after.GetProperty("resyncs").GetInt64() >= 1, after.ToString());
        var metrics = await new HttpClient().GetStringAsync(new Uri(Hub.BaseUrl, "/metrics"));
        Assert.Matches(@"parley_terminal_viewer_drops_total [1-9]", metrics);
    }

    [Fact]
    public async Task Recordings_of_sessions_no_longer_listed_are_deleted_after_the_retention_or_oldest_first_past_the_size_cap()
    {
        var registry = Hub.Host.Terminals;
        var aliceToken = await TokenAsync("alice");
        var files = Path.Combine(Hub.DataDir, "terminals");
        async Task RecordAllAsync(ParleyClient owner, string id, byte[] data)
        {
            for (var at = 0; at < data.Length; at += 32 * 1024)
            {
                await RecordAsync(owner, id, at, data.AsMemory(at, Math.Min(32 * 1024, data.Length - at)));
            }
        }
        async Task EndedAsync(string id, int bytes)
        {
            var owner = await OwnerAsync(aliceToken, id);
            await RecordAllAsync(owner, id, Pattern(bytes, bytes));
            Assert.True((await owner.PushAsync("term:" + id, "exit", new { exit_code = 0 })).IsOk);
        }
        await EndedAsync("old-a", 300_000);
        await Task.Delay(20);
        await EndedAsync("old-b", 300_000);
        await Task.Delay(20);
        await EndedAsync("old-c", 300_000);
        var live = await OwnerAsync(aliceToken, "live");
        await RecordAllAsync(live, "live", Pattern(600_000, 7));
        var viewer = await ConnectAsUserAsync("bob");
        Assert.True((await viewer.JoinAsync("term:old-a")).IsOk);
        Assert.Empty(registry.Sweep()); // within the retention and under the cap: nothing goes

        // The live recording is not counted: 1.5 MB held, 0.9 MB of it by ended sessions, is under a 1 MiB cap.
        registry.Options.MaxRecordingBytes = 1024 * 1024;
        Assert.Empty(registry.Sweep());
        // Past the cap (500 kB): the oldest ended recordings go until the rest fit; the live one never does.
        registry.Options.MaxRecordingBytes = 500_000;
        Assert.Equal(["old-a", "old-b"], registry.Sweep());
        Assert.False(File.Exists(Path.Combine(files, "old-a.meta.json")));
        Assert.False(File.Exists(Path.Combine(files, "old-b.output")));
        Assert.True(File.Exists(Path.Combine(files, "old-c.output")));
        Assert.Null(registry.Find("old-a"));
        // A viewer still on a deleted session is told plainly.
        Assert.Equal("session_not_found", (await viewer.PushAsync("term:old-a", "fetch_output", new { offset = 0, limit = 100 })).Reason);

        // Past the retention: every session no longer listed goes; the live one stays, whole.
        registry.Options.MaxRecordingBytes = 10L << 30;
        registry.Options.RetainEnded = TimeSpan.FromSeconds(1);
        await Task.Delay(1100);
        Assert.Equal(["old-c"], registry.Sweep());
        Assert.Equal(["live"], registry.List(includeEnded: true).Select(t => t.Id));
        Assert.True((await viewer.JoinAsync("term:live")).IsOk);
        Assert.Equal(Pattern(600_000, 7), await FetchAsync(viewer, "live", 0, 600_000));
    }

    [Fact]
    public async Task The_registry_lists_live_sessions_with_deltas_and_prunes_one_whose_owner_vanished()
    {
        var bob = await ConnectAsUserAsync("bob");
        var lobby = await bob.JoinAsync("term:lobby");
        Assert.True(lobby.IsOk);
        Assert.Empty(lobby.Response.GetProperty("sessions").EnumerateArray());

        var aliceToken = await TokenAsync("alice");
        var owner = await OwnerAsync(aliceToken, "listed");
        await RecordAsync(owner, "listed", 0, "\x1b[1mcompiling\x1b[0m 3/7\r\ncompiling 4/7"u8.ToArray());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        async Task<JsonElement> NextAsync(string kind, Func<JsonElement, bool>? match = null)
        {
            while (true)
            {
                var message = await bob.Messages.ReadAsync(timeout.Token);
                if (message.Topic == "term:lobby" && message.Event == kind && (match is null || match(message.Payload.GetProperty("session"))))
                {
                    return message.Payload.GetProperty("session");
                }
            }
        }
        var started = await NextAsync("session_started");
        Assert.Equal(("listed", "alice", "build"), (started.GetProperty("id").GetString(), started.GetProperty("owner").GetString(), started.GetProperty("name").GetString()));
        var updated = await NextAsync("session_updated", s => s.GetProperty("last_line").GetString() == "compiling 4/7");
        Assert.Equal(36, updated.GetProperty("output_size").GetInt64());

        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", aliceToken);
        var listed = JsonDocument.Parse(await http.GetStringAsync(new Uri(Hub.BaseUrl, "/api/terminals"))).RootElement.GetProperty("sessions");
        Assert.Equal(["listed"], listed.EnumerateArray().Select(s => s.GetProperty("id").GetString()));

        // The owner ends properly: session_ended with the exit code, and the list empties (all=true keeps the recording).
        Assert.True((await owner.PushAsync("term:listed", "exit", new { exit_code = 2, signal = (int?)null })).IsOk);
        var ended = await NextAsync("session_ended", s => s.GetProperty("id").GetString() == "listed");
        Assert.Equal(2, ended.GetProperty("exit_code").GetInt32());
        Assert.Empty(JsonDocument.Parse(await http.GetStringAsync(new Uri(Hub.BaseUrl, "/api/terminals"))).RootElement.GetProperty("sessions").EnumerateArray());
        Assert.Contains("listed", await http.GetStringAsync(new Uri(Hub.BaseUrl, "/api/terminals?all=true")), StringComparison.Ordinal);
        Assert.Equal("session_ended", (await owner.PushBinaryAsync("term:listed", "record_output", Chunk(36, "late"u8))).Reason);

        // An owner that vanishes without a goodbye is pruned once the grace (1 s here) has passed.
        var gone = await OwnerAsync(aliceToken, "vanished");
        await NextAsync("session_started", s => s.GetProperty("id").GetString() == "vanished");
        await DropAsync(gone);
        var clock = Stopwatch.StartNew();
        await NextAsync("session_ended", s => s.GetProperty("id").GetString() == "vanished");
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"pruned after {clock.Elapsed.TotalMilliseconds:0} ms, before the grace");
    }

    [Fact]
    public async Task An_owner_that_reconnects_is_told_how_much_the_hub_holds_and_continues_from_there()
    {
        var aliceToken = await TokenAsync("alice");
        var first = await OwnerAsync(aliceToken, "resume");
        await RecordAsync(first, "resume", 0, Pattern(10_000, 6));
        await RecordAsync(first, "resume", 0, "abc"u8.ToArray(), "record_input");
        await DropAsync(first);

        var second = await ConnectAsync(aliceToken);
        var joined = await second.JoinAsync("term:resume", joinParams: Hello());
        Assert.True(joined.IsOk, joined.Response.ToString());
        Assert.Equal((10_000L, 3L), (joined.Response.GetProperty("output_size").GetInt64(), joined.Response.GetProperty("input_size").GetInt64()));
        Assert.Equal(10_005, await RecordAsync(second, "resume", 10_000, "12345"u8.ToArray()));

        // A second owner connection replaces the first, which is told so.
        var third = await ConnectAsync(aliceToken);
        Assert.True((await third.JoinAsync("term:resume", joinParams: Hello())).IsOk);
        var refused = await second.PushBinaryAsync("term:resume", "record_output", Chunk(10_005, "x"u8));
        Assert.False(refused.IsOk);
        Assert.Equal(10_006, await RecordAsync(third, "resume", 10_005, "x"u8.ToArray()));
    }
}
