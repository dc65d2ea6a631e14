using System.Text;
using System.Text.Json;
using Parley.Hub.Auth;
using Parley.Hub.Channels;
using Parley.Protocol;
using Parley.Terminal;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Hub.Terminals;

/// <summary>What an owner says about its session when it joins (docs/protocol.md §17).</summary>
public sealed record OwnerHello(string Name, IReadOnlyList<string> Command, int Cols, int Rows, int Pid, DateTimeOffset StartedAt, bool AllowInput);

/// <summary>A refusal with one of the §17 error reasons.</summary>
public sealed class TerminalException(string reason, string message) : Exception(message)
{
    /// <summary>The error reply's <c>reason</c>.</summary>
    public string Reason { get; } = reason;
}

/// <summary>The §17 error reasons that are the terminal channel's own.</summary>
public static class TerminalErrors
{
    public const string SessionNotFound = "session_not_found";
    public const string SessionEnded = "session_ended";
    public const string OwnerOffline = "owner_offline";
}

/// <summary>
/// One terminal session as the hub holds it: its own copy of the recording (written with the same
/// <see cref="RecordingWriter"/> as <c>parley run</c>, under <c>&lt;data&gt;/terminals</c>), the owner's
/// subscription, the viewers and their counters. Appends and viewer joins meet under one lock, which is what
/// makes the seam exact: a viewer's join reply carries the output length L, and every live frame it gets
/// after the reply starts at L. A viewer never slows the owner: frames are queued without waiting and a
/// viewer that falls behind is resynced (<see cref="ResyncingSender"/>).
/// </summary>
public sealed class HubTerminal
{
    private const int TailBytes = 4096;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly HubMetrics _metrics;
    private readonly List<Viewer> _viewers = [];
    private readonly HashSet<string> _inputGrants = new(StringComparer.Ordinal);
    private readonly byte[] _tail = new byte[TailBytes];
    private int _tailLength;
    private RecordingWriter? _writer;
    private readonly RecordingReader _reader;
    private readonly TerminalSession? _hosted;
    private Subscriber? _owner;
    private long _outputLength;
    private long _inputLength;
    private long _bytesIn;
    private long _bytesOut;
    private long _drops;
    private long _resyncs;
    private long _backlogHighWater;
    private long _bytesSinceTick;

    private HubTerminal(RecordingReader recording, string owner, bool ownerAuthenticated, RecordingWriter? writer, HubMetrics metrics, TimeProvider time, TerminalSession? hosted = null)
    {
        _hosted = hosted;
        var meta = recording.Meta;
        _metrics = metrics;
        Id = meta.Id;
        Topic = TerminalChannel.TopicPrefix + Id;
        Prefix = recording.Prefix;
        Owner = owner;
        OwnerAuthenticated = ownerAuthenticated;
        _writer = writer;
        _time = time;
        Name = meta.Name;
        Command = meta.Command;
        Cols = meta.Cols;
        Rows = meta.Rows;
        Pid = meta.Pid;
        StartedAt = meta.StartedAt;
        EndedAt = meta.EndedAt;
        ExitCode = meta.ExitCode;
        Signal = meta.Signal;
        AllowInput = meta.AllowInput;
        Instance = meta.Instance;
        _reader = recording;
        _outputLength = _reader.OutputLength;
        _inputLength = _reader.InputLength;
        LastActivity = EndedAt ?? StartedAt;
    }

    public string Id { get; }

    /// <summary><c>term:&lt;id&gt;</c>.</summary>
    public string Topic { get; }

    /// <summary>The hub's copy: <c>&lt;data&gt;/terminals/&lt;id&gt;</c>.</summary>
    public string Prefix { get; }

    /// <summary>The user who started the session.</summary>
    public string Owner { get; }

    /// <summary>False on a hub without authentication, where every connection is equal.</summary>
    public bool OwnerAuthenticated { get; }

    public string Name { get; }
    public IReadOnlyList<string> Command { get; }
    public int Cols { get; private set; }
    public int Rows { get; private set; }
    public int Pid { get; private set; }
    public DateTimeOffset StartedAt { get; }
    public DateTimeOffset? EndedAt { get; private set; }
    public int? ExitCode { get; private set; }
    public int? Signal { get; private set; }

    /// <summary>Every viewer may type (<c>parley run --allow-input</c>).</summary>
    public bool AllowInput { get; }

    /// <summary>The fleet instance this session is a run of (the hub runs it under a terminal itself); null for a <c>parley run</c> session.</summary>
    public string? Instance { get; }

    /// <summary>True when the hub runs the command itself: it has no owner connection, and the command's own recording is the hub's copy.</summary>
    public bool IsHosted => _hosted is not null;

    /// <summary>Listed in the registry (set by <see cref="TerminalRegistry"/> under its gate).</summary>
    internal bool Live { get; set; }

    /// <summary>When the owner's connection went away (null while it is attached).</summary>
    internal DateTimeOffset? OwnerGoneAt { get; private set; }

    /// <summary>Something a <c>session_updated</c> would show changed since the last one.</summary>
    internal bool Dirty { get; set; }

    /// <summary>Output bytes per second over the last update interval.</summary>
    internal double BytesPerSecond { get; private set; }

    public DateTimeOffset LastActivity { get; private set; }

    public bool HasEnded => EndedAt is not null;

    public int ViewerCount
    {
        get
        {
            lock (_lock)
            {
                return _viewers.Count;
            }
        }
    }

    /// <summary>Creates a new session's copy under <paramref name="directory"/>.</summary>
    internal static HubTerminal Create(string directory, string id, ConnectionPrincipal owner, OwnerHello hello, HubMetrics metrics, TimeProvider time)
    {
        var meta = new RecordingMeta
        {
            Id = id,
            Name = hello.Name,
            Command = [.. hello.Command],
            StartedAt = hello.StartedAt,
            Cols = hello.Cols,
            Rows = hello.Rows,
            Pid = hello.Pid,
            AllowInput = hello.AllowInput,
            Owner = owner.Name,
        };
        var writer = RecordingWriter.Create(directory, meta);
        return new HubTerminal(RecordingReader.Open(writer.Prefix), owner.Name, owner.IsAuthenticated, writer, metrics, time);
    }

    /// <summary>
    /// A session the hub runs itself (a fleet instance under a terminal): <paramref name="session"/> records into the
    /// registry's directory, so its recording is the hub's copy and nothing is written twice. Its observer passes each
    /// chunk to <see cref="RecordOutput"/> (which then only counts and broadcasts); viewers' input and resizes go to
    /// the session. Admins may type into it, as may users granted input by its owner or an admin.
    /// </summary>
    internal static HubTerminal CreateHosted(TerminalSession session, string owner, HubMetrics metrics, TimeProvider time) =>
        new(RecordingReader.Open(session.Prefix), owner, ownerAuthenticated: true, writer: null, metrics, time, session);

    /// <summary>A session found on disk when the hub starts: ended, or waiting for its owner to come back.</summary>
    internal static HubTerminal Load(RecordingReader recording, HubMetrics metrics, TimeProvider time)
    {
        var meta = recording.Meta;
        var terminal = new HubTerminal(recording, meta.Owner ?? "", meta.Owner is not null && !meta.Owner.StartsWith("anon-", StringComparison.Ordinal), null, metrics, time);
        if (!terminal.HasEnded)
        {
            // Cut short (the hub stopped under it): its last activity is its last write, not its start, so that
            // terminals.RetainEnded counts from then.
            terminal.OwnerGoneAt = time.GetUtcNow();
            if (RecordingFiles.LastWriteOf(recording.Prefix) is { } written && written > terminal.LastActivity)
            {
                terminal.LastActivity = written;
            }
        }
        return terminal;
    }

    /// <summary>Whether <paramref name="principal"/> may join as this session's owner.</summary>
    public bool IsOwner(ConnectionPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        return OwnerAuthenticated
            ? principal.IsAuthenticated && (principal.Name == Owner || principal.IsAdmin)
            : !principal.IsAuthenticated;
    }

    /// <summary>Whether <paramref name="principal"/> may type into and resize the session.</summary>
    public bool CanInput(ConnectionPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        if (!principal.CanWrite)
        {
            return false;
        }
        lock (_lock)
        {
            return CanInputLocked(principal);
        }
    }

    private bool CanInputLocked(ConnectionPrincipal principal) =>
        principal.CanWrite && (AllowInput || (_hosted is not null && principal.IsAdmin)
            || (principal.IsAuthenticated && (principal.Name == Owner || _inputGrants.Contains(principal.Name))));

    /// <summary>Lets <paramref name="user"/> type (or stops them); their viewers are told <c>can_input {can_input}</c>.</summary>
    public void Grant(string user, bool input)
    {
        lock (_lock)
        {
            if (input)
            {
                _inputGrants.Add(user);
            }
            else
            {
                _inputGrants.Remove(user);
            }
            foreach (var viewer in _viewers)
            {
                var connection = viewer.Subscriber.Connection;
                if (connection.Principal.IsAuthenticated && connection.Principal.Name == user)
                {
                    connection.Send(WireFrames.Text(viewer.Subscriber.JoinRef, null, Topic, "can_input", CanInputLocked(connection.Principal), static (w, can) =>
                    {
                        w.WriteStartObject();
                        w.WriteBoolean("can_input"u8, can);
                        w.WriteEndObject();
                    }));
                }
            }
        }
    }

    /// <summary>Attaches the owner's subscription and returns where its stream must continue; the one it replaces, if any, is returned to be closed.</summary>
    internal (long Output, long Input, Subscriber? Replaced) AttachOwner(Subscriber owner)
    {
        lock (_lock)
        {
            if (HasEnded)
            {
                throw new TerminalException(TerminalErrors.SessionEnded, $"session {Id} has ended; start a new one");
            }
            if (Instance is not null)
            {
                throw new TerminalException(Protocol.ErrorReasons.Forbidden, $"session {Id} is fleet instance {Instance}'s terminal: the hub runs it, nobody joins it as its owner");
            }
            _writer ??= RecordingWriter.OpenForAppend(Prefix);
            var replaced = _owner;
            _owner = owner;
            OwnerGoneAt = null;
            Dirty = true;
            return (_outputLength, _inputLength, replaced);
        }
    }

    /// <summary>The owner's subscription ended; the session waits for it to come back.</summary>
    internal void DetachOwner(Subscriber owner)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_owner, owner))
            {
                _owner = null;
                OwnerGoneAt = _time.GetUtcNow();
            }
        }
    }

    /// <summary>True while <paramref name="subscriber"/> is the attached owner.</summary>
    internal bool IsOwnerSubscription(Subscriber subscriber)
    {
        lock (_lock)
        {
            return ReferenceEquals(_owner, subscriber);
        }
    }

    private long NowUs() => (long)(_time.GetUtcNow() - StartedAt).TotalMicroseconds;

    /// <summary>
    /// Appends the owner's output chunk that starts at <paramref name="offset"/> to the copy — only the part the hub
    /// does not hold yet; nothing when it would leave a gap — and queues those bytes to every viewer as one shared
    /// binary broadcast. Returns the output length after it (where the owner's next chunk starts).
    /// </summary>
    internal long RecordOutput(long offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            var writer = OpenWriter();
            data = NewPart(_outputLength, offset, data);
            if (data.IsEmpty)
            {
                return _outputLength;
            }
            writer?.AppendOutput(data, NowUs());
            _outputLength += data.Length;
            _bytesIn += data.Length;
            _bytesSinceTick += data.Length;
            KeepTail(data);
            LastActivity = _time.GetUtcNow();
            Dirty = true;
            if (_viewers.Count > 0)
            {
                var frame = PhoenixBinaryCodec.EncodeBroadcast(Topic, "output", data, wsFramed: true);
                foreach (var viewer in _viewers)
                {
                    if (viewer.Sender.SendDelta(frame))
                    {
                        _bytesOut += data.Length;
                        _backlogHighWater = Math.Max(_backlogHighWater, viewer.Sender.Connection.QueuedBytes);
                    }
                    else
                    {
                        _drops++;
                        _metrics.TerminalViewerDrop();
                    }
                }
            }
            return _outputLength;
        }
    }

    // The copy's writer; null for a hosted session, which records itself.
    private RecordingWriter? OpenWriter() =>
        _hosted is not null && !HasEnded ? null : _writer ?? throw new TerminalException(TerminalErrors.SessionEnded, $"session {Id} has ended");

    // The part of a chunk at `offset` that extends a stream now `length` long: empty when the hub holds all of it
    // already, or when it would leave a gap.
    private static ReadOnlySpan<byte> NewPart(long length, long offset, ReadOnlySpan<byte> data) =>
        offset > length || offset + data.Length <= length ? default : data[(int)(length - offset)..];

    /// <summary>Appends the owner's recorded input chunk at <paramref name="offset"/> (as <see cref="RecordOutput"/>; nothing is sent to viewers).</summary>
    internal long RecordInput(long offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            var writer = OpenWriter();
            data = NewPart(_inputLength, offset, data);
            if (data.IsEmpty)
            {
                return _inputLength;
            }
            writer?.AppendInput(data, NowUs());
            _inputLength += data.Length;
            _bytesIn += data.Length;
            LastActivity = _time.GetUtcNow();
            return _inputLength;
        }
    }

    /// <summary>The terminal's size changed: recorded, and told to every viewer.</summary>
    internal void Resize(int cols, int rows)
    {
        lock (_lock)
        {
            OpenWriter()?.AddResize(NowUs(), cols, rows);
            (Cols, Rows) = (cols, rows);
            Dirty = true;
            var frame = WireFrames.Text(null, null, Topic, "resize", (cols, rows), static (w, s) =>
            {
                w.WriteStartObject();
                w.WriteNumber("cols"u8, s.cols);
                w.WriteNumber("rows"u8, s.rows);
                w.WriteEndObject();
            });
            foreach (var viewer in _viewers)
            {
                viewer.Sender.Connection.Send(frame);
            }
        }
    }

    /// <summary>The command ended: the copy is completed and every viewer told.</summary>
    internal void End(int? exitCode, int? signal)
    {
        lock (_lock)
        {
            if (_hosted is null)
            {
                if (_writer is not { } writer)
                {
                    return;
                }
                writer.Complete(new TerminalExit(exitCode, signal), NowUs());
                writer.Dispose();
                _writer = null;
            }
            else if (HasEnded)
            {
                return; // the session completed its recording before it said so
            }
            EndedAt = _time.GetUtcNow();
            (ExitCode, Signal) = (exitCode, signal);
            var frame = WireFrames.Text(null, null, Topic, "exit", this, static (w, t) =>
            {
                w.WriteStartObject();
                WriteNullable(w, "exit_code"u8, t.ExitCode);
                WriteNullable(w, "signal"u8, t.Signal);
                w.WriteNumber("ended_at"u8, t.EndedAt!.Value.ToUnixTimeMilliseconds());
                w.WriteEndObject();
            });
            foreach (var viewer in _viewers)
            {
                viewer.Sender.Connection.Send(frame);
            }
        }
    }

    /// <summary>Closes the copy's files (hub shutdown); an unfinished session can be taken up again later.</summary>
    internal void CloseFiles()
    {
        lock (_lock)
        {
            _writer?.Dispose();
            _writer = null;
        }
    }

    /// <summary>
    /// Hands an allowed viewer's keystrokes to the command: a hosted session writes them to its terminal (and records
    /// them) now; otherwise the owner is sent <c>input {data_b64, from}</c> and does so.
    /// </summary>
    internal void ForwardInput(string from, byte[] data)
    {
        // The hosted session is called outside the lock: it tells its observer, which records into this terminal.
        if (OwnerForForwarding() is { } owner)
        {
            SendToOwner(owner, "input", from, w => w.WriteString("data_b64"u8, Convert.ToBase64String(data)));
        }
        else if (!_hosted!.WriteInput(data))
        {
            throw new TerminalException(TerminalErrors.SessionEnded, $"session {Id} has ended");
        }
    }

    /// <summary>An allowed viewer's resize: a hosted session resizes its terminal; otherwise the owner is sent <c>resize_request {cols, rows, from}</c>.</summary>
    internal void ForwardResize(string from, int cols, int rows)
    {
        if (OwnerForForwarding() is { } owner)
        {
            SendToOwner(owner, "resize_request", from, w =>
            {
                w.WriteNumber("cols"u8, cols);
                w.WriteNumber("rows"u8, rows);
            });
        }
        else
        {
            _hosted!.Resize(cols, rows);
        }
    }

    // The owner's subscription to forward to, or null for a hosted session; throws when the session cannot take input now.
    private Subscriber? OwnerForForwarding()
    {
        lock (_lock)
        {
            if (HasEnded)
            {
                throw new TerminalException(TerminalErrors.SessionEnded, $"session {Id} has ended");
            }
            return _hosted is not null ? null : _owner ?? throw new TerminalException(TerminalErrors.OwnerOffline, "the session's owner is not connected right now; try again shortly");
        }
    }

    private void SendToOwner(Subscriber owner, string @event, string from, Action<Utf8JsonWriter> writeFields) =>
        owner.Connection.Send(WireFrames.Text(owner.JoinRef, null, Topic, @event, (from, writeFields), static (w, s) =>
        {
            w.WriteStartObject();
            s.writeFields(w);
            w.WriteString("from"u8, s.from);
            w.WriteEndObject();
        }));

    /// <summary>
    /// Adds a viewer and, under the same lock, sends its join reply (written by <paramref name="reply"/> with the
    /// output length, the seam) — so no output frame can fall between the length it is told and the live frames.
    /// </summary>
    internal void AddViewer(Subscriber subscriber, int queueBytes, Action<HubTerminal, long> reply)
    {
        lock (_lock)
        {
            var viewer = new Viewer(subscriber);
            viewer.Sender = new ResyncingSender(subscriber.Connection, queueBytes, _ => Resync(viewer));
            reply(this, _outputLength);
            _viewers.Add(viewer);
            Dirty = true;
        }
    }

    internal void RemoveViewer(Subscriber subscriber)
    {
        lock (_lock)
        {
            var index = _viewers.FindIndex(v => ReferenceEquals(v.Subscriber, subscriber));
            if (index >= 0)
            {
                _viewers[index].Sender.Dispose();
                _viewers.RemoveAt(index);
                Dirty = true;
            }
        }
    }

    // A viewer that fell behind: live output resumes at the current length, which it is told.
    private ValueTask Resync(Viewer viewer)
    {
        lock (_lock)
        {
            _resyncs++;
            viewer.Sender.SendSnapshot(WireFrames.Text(viewer.Subscriber.JoinRef, null, Topic, "resync", _outputLength, static (w, offset) =>
            {
                w.WriteStartObject();
                w.WriteNumber("offset"u8, offset);
                w.WriteEndObject();
            }));
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Exactly the bytes <c>[offset, min(offset + limit, length))</c> of the output or the input.</summary>
    internal byte[] Fetch(bool output, long offset, int limit)
    {
        long length;
        lock (_lock)
        {
            length = output ? _outputLength : _inputLength;
        }
        if (offset >= length)
        {
            return [];
        }
        var count = (int)Math.Min(limit, length - offset);
        try
        {
            return output ? _reader.ReadOutput(offset, count) : _reader.ReadInput(offset, count);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new TerminalException(TerminalErrors.SessionNotFound, $"session {Id}'s recording is gone (deleted by the hub's retention: terminals.RetainEnded, terminals.MaxRecordingBytes)");
        }
    }

    /// <summary>Writes <c>get_stats</c>' response.</summary>
    public void WriteStats(Utf8JsonWriter w)
    {
        lock (_lock)
        {
            w.WriteStartObject();
            w.WriteNumber("viewers"u8, _viewers.Count);
            w.WriteNumber("bytes_in"u8, _bytesIn);
            w.WriteNumber("bytes_out"u8, _bytesOut);
            w.WriteNumber("drops"u8, _drops);
            w.WriteNumber("resyncs"u8, _resyncs);
            w.WriteNumber("backlog_high_water"u8, _backlogHighWater);
            w.WriteEndObject();
        }
    }

    /// <summary>Writes <c>get_meta</c>' fields (without the enclosing object) — also the viewer's join reply.</summary>
    public void WriteMetaFields(Utf8JsonWriter w)
    {
        lock (_lock)
        {
            WriteCommonFieldsLocked(w);
            w.WriteNumber("pid"u8, Pid);
            w.WriteNumber("input_size"u8, _inputLength);
        }
    }

    /// <summary>Writes the registry's summary object.</summary>
    public void WriteSummary(Utf8JsonWriter w)
    {
        lock (_lock)
        {
            w.WriteStartObject();
            WriteCommonFieldsLocked(w);
            w.WriteNumber("viewers"u8, _viewers.Count);
            w.WriteNumber("bytes_per_second"u8, Math.Round(BytesPerSecond));
            w.WriteNumber("last_activity"u8, LastActivity.ToUnixTimeMilliseconds());
            w.WriteString("last_line"u8, LastLineLocked());
            w.WriteBoolean("owner_connected"u8, _owner is not null || (_hosted is not null && !HasEnded));
            w.WriteBoolean("live"u8, Live);
            w.WriteEndObject();
        }
    }

    // The fields get_meta and the registry summary share: who, what, how big, when, how it ended.
    private void WriteCommonFieldsLocked(Utf8JsonWriter w)
    {
        w.WriteString("id"u8, Id);
        w.WriteString("name"u8, Name);
        w.WriteStartArray("command"u8);
        foreach (var part in Command)
        {
            w.WriteStringValue(part);
        }
        w.WriteEndArray();
        w.WriteString("owner"u8, Owner);
        if (Instance is null)
        {
            w.WriteNull("instance"u8);
        }
        else
        {
            w.WriteString("instance"u8, Instance);
        }
        w.WriteNumber("cols"u8, Cols);
        w.WriteNumber("rows"u8, Rows);
        w.WriteNumber("started_at"u8, StartedAt.ToUnixTimeMilliseconds());
        WriteNullable(w, "ended_at"u8, EndedAt?.ToUnixTimeMilliseconds());
        WriteNullable(w, "exit_code"u8, ExitCode);
        WriteNullable(w, "signal"u8, Signal);
        w.WriteNumber("output_size"u8, _outputLength);
    }

    /// <summary>Closes an update interval: bytes/s over it.</summary>
    internal void Tick(TimeSpan interval)
    {
        lock (_lock)
        {
            var rate = _bytesSinceTick / Math.Max(interval.TotalSeconds, 0.001);
            if (Math.Abs(rate - BytesPerSecond) > 0.5)
            {
                Dirty = true;
            }
            BytesPerSecond = rate;
            _bytesSinceTick = 0;
        }
    }

    private void KeepTail(ReadOnlySpan<byte> data)
    {
        if (data.Length >= TailBytes)
        {
            data[^TailBytes..].CopyTo(_tail);
            _tailLength = TailBytes;
            return;
        }
        var keep = Math.Min(_tailLength, TailBytes - data.Length);
        Buffer.BlockCopy(_tail, _tailLength - keep, _tail, 0, keep);
        data.CopyTo(_tail.AsSpan(keep));
        _tailLength = keep + data.Length;
    }

    // The last line with text, as a person would read it.
    private string LastLineLocked()
    {
        foreach (var raw in Encoding.UTF8.GetString(_tail, 0, _tailLength).Split('\n').Reverse())
        {
            var line = TerminalText.PlainLine(raw).Trim();
            if (line.Length > 0)
            {
                return line.Length > 200 ? line[..200] : line;
            }
        }
        return "";
    }

    private static void WriteNullable(Utf8JsonWriter w, ReadOnlySpan<byte> name, long? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private sealed class Viewer(Subscriber subscriber)
    {
        public Subscriber Subscriber { get; } = subscriber;

        public ResyncingSender Sender { get; set; } = null!;
    }
}
