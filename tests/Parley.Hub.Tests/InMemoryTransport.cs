using System.Buffers.Binary;
using System.Text;
using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Hub.Tests;

/// <summary>
/// An in-memory <see cref="IConnectionTransport"/>: records every frame it accepts as the decoded text of
/// the frame (the 2/4/10-byte WebSocket header is checked and stripped), in order, together with the
/// close. A byte limit makes <see cref="TrySend"/> return false on overflow and close with 4008, as the
/// real transport does. Presence frames (<c>presence_state</c>, <c>presence_diff</c>) are counted but only
/// recorded with <paramref name="recordPresence"/>, so tests of other features see only their own frames.
/// </summary>
internal sealed class InMemoryTransport(int byteLimit = int.MaxValue, bool recordPresence = true) : IConnectionTransport
{
    private readonly object _lock = new();
    private readonly List<string> _frames = [];
    private readonly List<string> _events = [];
    private long _bytes;

    /// <summary>Frames accepted so far (text frames as their JSON; binary frames as <c>binary:</c> + hex).</summary>
    public IReadOnlyList<string> Frames
    {
        get
        {
            lock (_lock)
            {
                return [.. _frames];
            }
        }
    }

    /// <summary>Frames and the close, in the order they happened (the close as <c>close:CODE:reason</c>).</summary>
    public IReadOnlyList<string> Events
    {
        get
        {
            lock (_lock)
            {
                return [.. _events];
            }
        }
    }

    public ushort? CloseCode { get; private set; }

    public string? CloseReason { get; private set; }

    public int CloseCalls { get; private set; }

    public bool IsClosing { get; private set; }

    public long BytesQueued => Interlocked.Read(ref _bytes);

    /// <summary>What the transport reports as not yet written (a test sets it to play a stalled reader).</summary>
    public long Backlog { get; set; }

    public long QueuedBytes => Backlog;

    public bool TrySend(byte[] frame)
    {
        var text = Decode(frame);
        lock (_lock)
        {
            if (IsClosing)
            {
                return false;
            }
            if (_bytes + frame.Length > byteLimit)
            {
                CloseLocked(CloseStatus.SlowConsumer, "slow consumer");
                return false;
            }
            _bytes += frame.Length;
            if (recordPresence || !IsPresence(text))
            {
                _frames.Add(text);
                _events.Add(text);
            }
            return true;
        }
    }

    public ValueTask<bool> SendAsync(byte[] frame, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(TrySend(frame));
    }

    public void Close(ushort code, string reason)
    {
        lock (_lock)
        {
            CloseLocked(code, reason);
        }
    }

    private void CloseLocked(ushort code, string reason)
    {
        CloseCalls++;
        if (IsClosing)
        {
            return;
        }
        IsClosing = true;
        CloseCode = code;
        CloseReason = reason;
        _events.Add($"close:{code}:{reason}");
    }

    private static bool IsPresence(string text)
    {
        if (!text.StartsWith('['))
        {
            return false;
        }
        using var document = System.Text.Json.JsonDocument.Parse(text);
        var root = document.RootElement;
        return root.GetArrayLength() >= 4 && root[3].GetString() is "presence_state" or "presence_diff";
    }

    /// <summary>Checks a complete unmasked server frame and returns its payload as text.</summary>
    public static string Decode(byte[] frame)
    {
        if (frame.Length < 2)
        {
            throw new InvalidOperationException("frame shorter than a header");
        }
        var opcode = frame[0] & 0x0F;
        if ((frame[0] & 0x80) == 0 || (frame[0] & 0x70) != 0 || (frame[1] & 0x80) != 0)
        {
            throw new InvalidOperationException($"not a final unmasked server frame: {frame[0]:x2} {frame[1]:x2}");
        }
        var (header, length) = (frame[1] & 0x7F) switch
        {
            126 => (4, (long)BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(2))),
            127 => (10, (long)BinaryPrimitives.ReadUInt64BigEndian(frame.AsSpan(2))),
            var small => (2, (long)small),
        };
        if (header + length != frame.Length)
        {
            throw new InvalidOperationException($"header says {length} payload bytes, frame has {frame.Length - header}");
        }
        var payload = frame.AsSpan(header);
        return opcode switch
        {
            0x1 => WebSocketFraming.StrictUtf8.GetString(payload),
            0x2 => "binary:" + Convert.ToHexString(payload),
            _ => $"opcode{opcode}:" + Convert.ToHexString(payload),
        };
    }

    /// <summary>Waits (bounded) until <paramref name="predicate"/> holds for the recorded frames.</summary>
    public async Task<IReadOnlyList<string>> WaitForAsync(Func<IReadOnlyList<string>, bool> predicate, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var frames = Frames;
            if (predicate(frames))
            {
                return frames;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting for {what}; frames so far:\n{string.Join("\n", frames)}");
            }
            await Task.Delay(5);
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> frames were recorded.</summary>
    public Task<IReadOnlyList<string>> WaitForCountAsync(int count) =>
        WaitForAsync(f => f.Count >= count, $"{count} frames");

    public override string ToString() => string.Join("\n", Events);

    internal static string Utf8(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
