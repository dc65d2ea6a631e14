using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Terminal;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Cli.Terminals;

/// <summary>
/// Streams a <see cref="TerminalSession"/>'s recording to the hub as the owner of <c>term:&lt;id&gt;</c>
/// (docs/protocol.md §17). The command is never held up by it: the PTY side only wakes this publisher,
/// which reads the bytes back from the local recording and sends them at the hub's pace — so a slow or absent
/// hub costs memory nowhere and loses nothing. After a reconnect the hub's join reply says how much of each
/// stream it holds, and the publisher continues from there. Input and resize requests from viewers the owner
/// allowed come back as <c>input</c> / <c>resize_request</c> and go to the PTY (and so into the recording).
/// </summary>
internal sealed class TerminalPublisher : ITerminalObserver, IAsyncDisposable
{
    // A binary push must fit the hub's 64 KiB frame limit with its header and offset.
    private const int ChunkBytes = 60 * 1024;

    // Chunks in flight at once: enough to keep the hub busy between replies, few enough to stay far below its outbound limits.
    private const int Window = 8;

    private readonly ParleyClient _client;
    private readonly TerminalSession _session;
    private readonly RecordingReader _recording;
    private readonly string _topic;
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly Queue<(int Cols, int Rows)> _resizes = new();
    private TerminalExit? _exit;
    private (long Output, long Input)? _resumeAt;
    private Task? _run;
    private Task? _listen;

    public TerminalPublisher(ParleyClient client, TerminalSession session)
    {
        _client = client;
        _session = session;
        _recording = RecordingReader.Open(session.Prefix);
        _topic = "term:" + session.Id;
    }

    /// <summary>Joins as owner and starts streaming. Throws <see cref="ParleyClientException"/> when the hub refuses the join.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var meta = _session.Meta;
        var hello = new JsonObject
        {
            ["role"] = "owner",
            ["name"] = meta.Name,
            ["command"] = new JsonArray([.. meta.Command.Select(c => (JsonNode)c)]),
            ["cols"] = _session.Size.Cols,
            ["rows"] = _session.Size.Rows,
            ["pid"] = _session.Pid,
            ["started_at"] = meta.StartedAt.ToUnixTimeMilliseconds(),
            ["allow_input"] = meta.AllowInput,
        };
        var reply = await _client.JoinAsync(_topic, joinParams: hello, cancellationToken: cancellationToken);
        if (!reply.IsOk)
        {
            throw new ParleyClientException($"the hub refused the session: {reply.Reason ?? "error"} {Detail(reply.Response)}".TrimEnd());
        }
        _resumeAt = Sizes(reply.Response);
        _listen = Task.Run(ListenAsync, CancellationToken.None);
        _run = Task.Run(RunAsync, CancellationToken.None);
    }

    public void OnOutput(long offset, ReadOnlySpan<byte> data) => _wake.Release();

    public void OnInput(long offset, ReadOnlySpan<byte> data) => _wake.Release();

    public void OnResize(long timeUs, int cols, int rows)
    {
        lock (_lock)
        {
            _resizes.Enqueue((cols, rows));
        }
        _wake.Release();
    }

    public void OnExit(TerminalExit exit)
    {
        lock (_lock)
        {
            _exit = exit;
        }
        _wake.Release();
    }

    /// <summary>Waits (bounded) until everything recorded, and the exit, reached the hub.</summary>
    public async Task<bool> DrainAsync(TimeSpan timeout)
    {
        if (_run is null)
        {
            return false;
        }
        try
        {
            await _run.WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task RunAsync()
    {
        long output = 0, input = 0;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                lock (_lock)
                {
                    if (_resumeAt is { } resume)
                    {
                        (output, input) = resume;
                        _resumeAt = null;
                    }
                }
                var sentSomething = output < _session.OutputLength || input < _session.InputLength;
                output = await SendStreamAsync("record_output", output, () => _session.OutputLength, _recording.ReadOutput);
                input = await SendStreamAsync("record_input", input, () => _session.InputLength, _recording.ReadInput);
                (int Cols, int Rows)? resize;
                TerminalExit? exit;
                lock (_lock)
                {
                    resize = _resizes.TryDequeue(out var r) ? r : null;
                    exit = _resizes.Count == 0 ? _exit : null;
                }
                if (resize is { } size)
                {
                    await CheckAsync(_client.PushAsync(_topic, "resize", new { cols = size.Cols, rows = size.Rows }, _stop.Token));
                    continue;
                }
                if (exit is { } done && output >= _session.OutputLength && input >= _session.InputLength)
                {
                    await CheckAsync(_client.PushAsync(_topic, "exit", new { exit_code = done.ExitCode, signal = done.Signal }, _stop.Token));
                    return;
                }
                if (!sentSomething)
                {
                    await _wake.WaitAsync(TimeSpan.FromSeconds(1), _stop.Token);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is ParleyClientException or OperationCanceledException)
            {
                // The connection dropped (the client redials and rejoins; the rejoin says where to go on) or the hub refused.
                await Task.Delay(200, _stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    // Sends the stream from `from` to its current end with up to Window chunks in flight (one round trip per chunk
    // would cap a session at a chunk per round trip). Each payload is the chunk's offset (8 bytes, big-endian) and
    // the bytes; the hub appends only what it lacks and answers with how much of the stream it now holds — the last
    // answer is where to go on, so a chunk it ignored (after a gap) is simply sent again.
    private async Task<long> SendStreamAsync(string @event, long from, Func<long> length, Func<long, int, byte[]> read)
    {
        var inFlight = new Queue<(Task<PushReply> Reply, long End)>();
        var next = from;
        var held = from;
        var skipped = false;
        try
        {
            while (true)
            {
                while (!skipped && inFlight.Count < Window && next < length())
                {
                    var chunk = read(next, ChunkBytes);
                    if (chunk.Length == 0)
                    {
                        break;
                    }
                    var payload = new byte[8 + chunk.Length];
                    System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(payload, next);
                    chunk.CopyTo(payload, 8);
                    next += chunk.Length;
                    inFlight.Enqueue((_client.PushBinaryAsync(_topic, @event, payload, _stop.Token), next));
                }
                if (inFlight.Count == 0)
                {
                    return held;
                }
                var (pending, end) = inFlight.Dequeue();
                var reply = await pending;
                if (!reply.IsOk)
                {
                    throw new ParleyClientException($"{reply.Reason ?? "error"} {Detail(reply.Response)}".TrimEnd());
                }
                held = reply.Response.GetProperty("size").GetInt64();
                skipped |= held < end;
                if (skipped && inFlight.Count == 0)
                {
                    // The hub skipped a chunk (it would have left a gap): resend from what it holds.
                    (next, skipped) = (held, false);
                }
            }
        }
        finally
        {
            // Replies still pending belong to chunks the next round resends if needed; observe them so none goes unobserved.
            foreach (var (pending, _) in inFlight)
            {
                _ = pending.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
            }
        }
    }

    private static async Task CheckAsync(Task<PushReply> push)
    {
        var reply = await push;
        if (!reply.IsOk)
        {
            throw new ParleyClientException($"{reply.Reason ?? "error"} {Detail(reply.Response)}".TrimEnd());
        }
    }

    // Viewers' input and resize requests, and where to resume after a rejoin.
    private async Task ListenAsync()
    {
        var messages = Task.Run(async () =>
        {
            await foreach (var message in _client.Messages.ReadAllAsync(_stop.Token))
            {
                if (message.Topic != _topic || message.IsBinary || message.Payload.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }
                if (message.Event == "input" && message.Payload.TryGetProperty("data_b64", out var data) && data.ValueKind == JsonValueKind.String)
                {
                    try
                    {
                        _session.WriteInput(Convert.FromBase64String(data.GetString()!));
                    }
                    catch (FormatException)
                    {
                    }
                }
                else if (message.Event == "resize_request" && message.Payload.TryGetProperty("cols", out var c) && c.TryGetInt32(out var cols)
                    && message.Payload.TryGetProperty("rows", out var r) && r.TryGetInt32(out var rows))
                {
                    _session.Resize(cols, rows);
                }
            }
        });
        try
        {
            await foreach (var e in _client.Events.ReadAllAsync(_stop.Token))
            {
                if (e is Rejoined rejoined && rejoined.Topic == _topic && rejoined.Reply.ValueKind == JsonValueKind.Object)
                {
                    lock (_lock)
                    {
                        _resumeAt = Sizes(rejoined.Reply);
                    }
                    _wake.Release();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        await messages.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private static (long, long) Sizes(JsonElement reply) =>
        (reply.TryGetProperty("output_size", out var o) ? o.GetInt64() : 0, reply.TryGetProperty("input_size", out var i) ? i.GetInt64() : 0);

    private static string Detail(JsonElement response) =>
        response.ValueKind == JsonValueKind.Object && response.TryGetProperty("detail", out var d) ? $"({d.GetString()})" : "";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var task in new[] { _run, _listen })
        {
            if (task is not null)
            {
                await task.ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
        _stop.Dispose();
        _wake.Dispose();
    }
}
