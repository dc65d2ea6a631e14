using Parley.Hub.History;

namespace Parley.Hub.Tests;

/// <summary>
/// A list-per-topic <see cref="IHistoryStore"/> for tests, following the interface's contract (the same
/// rules HistoryStoreSpec checks): offsets from 1 per topic, idempotent client ids among retained
/// messages (also within one batch), all-or-nothing batches, trimming that never moves the head.
/// Hooks let a test hold or fail appends and position reads.
/// </summary>
internal sealed class InMemoryHistoryStore(string epoch = "mem-epoch-1") : IHistoryStore
{
    private sealed class TopicState
    {
        public List<StoredMessage> Messages { get; } = [];
        public long Head { get; set; }
        public long LastTrimmedTimestampMs { get; set; }
        public long FirstRetained => Messages.Count > 0 ? Messages[0].Offset : Head + 1;
    }

    private readonly object _lock = new();
    private readonly Dictionary<string, TopicState> _topics = new(StringComparer.Ordinal);
    private bool _disposed;

    public string Epoch { get; } = epoch;

    /// <summary>When set, every append batch waits for this task first (to hold the append pipeline).</summary>
    public Task? AppendGate { get; set; }

    /// <summary>When set, the next append batch throws this (and stores nothing).</summary>
    public Exception? FailNextAppend { get; set; }

    /// <summary>When set, position reads throw this.</summary>
    public Exception? FailPosition { get; set; }

    /// <summary>When set, range and time reads (replays) throw this.</summary>
    public Exception? FailReads { get; set; }

    /// <summary>Append batches committed.</summary>
    public int Batches { get; private set; }

    public async ValueTask<IReadOnlyList<AppendOutcome>> AppendBatchAsync(IReadOnlyList<AppendRequest> batch, CancellationToken cancellationToken = default)
    {
        if (AppendGate is { } gate)
        {
            await gate.WaitAsync(cancellationToken);
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (FailNextAppend is { } failure)
            {
                FailNextAppend = null;
                throw failure;
            }
            // Stage into copies so a failure part-way stores nothing.
            var staged = new Dictionary<string, (List<StoredMessage> Added, long Head)>(StringComparer.Ordinal);
            var outcomes = new List<AppendOutcome>(batch.Count);
            foreach (var request in batch)
            {
                var state = _topics.GetValueOrDefault(request.Topic);
                if (!staged.TryGetValue(request.Topic, out var stage))
                {
                    stage = ([], state?.Head ?? 0);
                }
                if (request.ClientId is not null)
                {
                    var original = (state?.Messages ?? []).Concat(stage.Added).FirstOrDefault(m => m.ClientId == request.ClientId);
                    if (original is not null)
                    {
                        outcomes.Add(new AppendOutcome(original, true));
                        staged[request.Topic] = stage;
                        continue;
                    }
                }
                var offset = stage.Head + 1;
                var stored = new StoredMessage(request.Topic, offset, request.Id, request.TimestampMs, request.From, request.Body, request.ClientId, request.MetaJson);
                stage.Added.Add(stored);
                staged[request.Topic] = (stage.Added, offset);
                outcomes.Add(new AppendOutcome(stored, false));
            }
            foreach (var (topic, stage) in staged)
            {
                if (!_topics.TryGetValue(topic, out var state))
                {
                    _topics[topic] = state = new TopicState();
                }
                state.Messages.AddRange(stage.Added);
                state.Head = stage.Head;
            }
            Batches++;
            return outcomes;
        }
    }

    public ValueTask<TopicPosition> GetPositionAsync(string topic, CancellationToken cancellationToken = default)
    {
        if (FailPosition is { } failure)
        {
            throw failure;
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ValueTask.FromResult(_topics.TryGetValue(topic, out var state)
                ? new TopicPosition(state.Head, Epoch, state.FirstRetained, state.LastTrimmedTimestampMs)
                : new TopicPosition(0, Epoch, 1, 0));
        }
    }

    /// <summary>Runs after each range read (e.g. to trim between replay pages).</summary>
    public Action<long>? AfterRangeRead { get; set; }

    public ValueTask<IReadOnlyList<StoredMessage>> ReadRangeAsync(string topic, long afterOffset, long throughOffset, int limit, CancellationToken cancellationToken = default)
    {
        var page = Read(topic, messages => messages.Where(m => m.Offset > afterOffset && m.Offset <= throughOffset), limit);
        AfterRangeRead?.Invoke(afterOffset);
        return page;
    }

    public ValueTask<IReadOnlyList<StoredMessage>> ReadSinceTimeAsync(string topic, long sinceMs, long throughOffset, int limit, CancellationToken cancellationToken = default) =>
        Read(topic, messages => messages.Where(m => m.TimestampMs >= sinceMs && m.Offset <= throughOffset), limit);

    public ValueTask<IReadOnlyList<StoredMessage>> ReadBeforeAsync(string topic, long beforeOffset, int limit, CancellationToken cancellationToken = default) =>
        Read(topic, messages => messages.Where(m => m.Offset < beforeOffset).Reverse(), limit);

    private ValueTask<IReadOnlyList<StoredMessage>> Read(string topic, Func<IEnumerable<StoredMessage>, IEnumerable<StoredMessage>> select, int limit)
    {
        if (FailReads is { } failure)
        {
            throw failure;
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (limit <= 0 || !_topics.TryGetValue(topic, out var state))
            {
                return ValueTask.FromResult<IReadOnlyList<StoredMessage>>([]);
            }
            return ValueTask.FromResult<IReadOnlyList<StoredMessage>>(select(state.Messages).Take(limit).ToList());
        }
    }

    public ValueTask<long> TrimAsync(RetentionPolicy policy, long nowMs, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long removed = 0;
            var cutoff = policy.MaxAge > TimeSpan.Zero ? nowMs - (long)policy.MaxAge.TotalMilliseconds : long.MinValue;
            foreach (var state in _topics.Values)
            {
                var overCount = policy.MaxMessagesPerTopic > 0 ? Math.Max(0, state.Messages.Count - policy.MaxMessagesPerTopic) : 0;
                var gone = state.Messages.Where((m, i) => i < overCount || m.TimestampMs < cutoff).ToList();
                if (gone.Count == 0)
                {
                    continue;
                }
                state.LastTrimmedTimestampMs = Math.Max(state.LastTrimmedTimestampMs, gone.Max(m => m.TimestampMs));
                state.Messages.RemoveAll(gone.Contains);
                removed += gone.Count;
            }
            return ValueTask.FromResult(removed);
        }
    }

    public ValueTask<bool> RenameTopicAsync(string from, string to, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_topics.ContainsKey(to))
            {
                return ValueTask.FromResult(false);
            }
            if (_topics.Remove(from, out var state))
            {
                var moved = state.Messages.Select(m => m with { Topic = to }).ToList();
                state.Messages.Clear();
                state.Messages.AddRange(moved);
                _topics[to] = state;
            }
            return ValueTask.FromResult(true);
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            _disposed = true;
        }
        return ValueTask.CompletedTask;
    }
}
