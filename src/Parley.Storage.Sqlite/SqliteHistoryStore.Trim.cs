using Parley.Hub.History;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteHistoryStore
{
    // The fewest offsets one trim transaction takes from a topic (when the budget allows).
    private const int MinTrimShare = 16;

    private const string SelectTopicsSql = "SELECT topic_id, head, first_retained FROM topics;";

    // The first offset in [$from, $head] that is young enough to keep, walking the offset index ("+ts"
    // keeps the planner off the ts index). Costs about as many rows as will be deleted.
    private const string FirstKeptByAgeSql = """
        SELECT "offset" FROM messages
        WHERE topic_id = $topic_id AND "offset" >= $from AND "offset" <= $head AND +ts >= $cutoff
        ORDER BY "offset" LIMIT 1;
        """;

    /// <inheritdoc />
    /// <remarks>
    /// Retention always removes a prefix of each topic (offsets below some bound), so the retained
    /// offsets stay contiguous from FirstRetained to Head. With the age limit, removal stops at the first
    /// message that is young enough; an older message behind it (a timestamp that went backwards) is
    /// removed once everything before it is. The work runs in transactions of at most
    /// <see cref="SqliteHistoryStoreOptions.TrimChunkSize"/> messages, releasing the write lock between
    /// them; concurrent calls run one after the other. Cancelling keeps the chunks already committed.
    /// Each transaction takes an equal share of its budget from every topic still to trim, oldest
    /// offsets first: messages are stored in append order, so the oldest messages of busy topics share
    /// table pages, and deleting them together writes each page once rather than once per topic.
    /// </remarks>
    public async ValueTask<long> TrimAsync(RetentionPolicy policy, long nowMs, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var maxMessages = policy.MaxMessagesPerTopic > 0 ? policy.MaxMessagesPerTopic : 0;
        long? ageCutoffMs = policy.MaxAge > TimeSpan.Zero ? SaturatingSubtract(nowMs, (long)policy.MaxAge.TotalMilliseconds) : null;
        if (maxMessages == 0 && ageCutoffMs is null)
        {
            return 0;
        }

        await _trimLock.WaitAsync(cancellationToken);
        try
        {
            var targets = await PlanTrimAsync(maxMessages, ageCutoffMs, cancellationToken);
            long removed = 0;
            while (targets.Count > 0)
            {
                removed += await TrimChunkAsync(targets, cancellationToken);
            }

            return removed;
        }
        finally
        {
            _trimLock.Release();
        }
    }

    // Decides, per topic, below which offset everything goes. Runs on a read connection, so appends
    // continue meanwhile; appends only add offsets above the head read here, so the plan stays valid.
    private async Task<List<TrimTarget>> PlanTrimAsync(int maxMessages, long? ageCutoffMs, CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken);

        var topics = new List<(long TopicId, long Head, long FirstRetained)>();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = SelectTopicsSql;
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                topics.Add((reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2)));
            }
        }

        await using var firstKept = connection.CreateCommand();
        firstKept.CommandText = FirstKeptByAgeSql;
        var topicParameter = firstKept.Parameters.AddWithValue("$topic_id", 0L);
        var fromParameter = firstKept.Parameters.AddWithValue("$from", 0L);
        var headParameter = firstKept.Parameters.AddWithValue("$head", 0L);
        firstKept.Parameters.AddWithValue("$cutoff", ageCutoffMs ?? 0L);

        var targets = new List<TrimTarget>();
        foreach (var (topicId, head, firstRetained) in topics)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var below = firstRetained;
            if (maxMessages > 0)
            {
                below = Math.Max(below, head - maxMessages + 1);
            }

            if (ageCutoffMs is not null && below <= head)
            {
                topicParameter.Value = topicId;
                fromParameter.Value = below;
                headParameter.Value = head;
                below = await firstKept.ExecuteScalarAsync(cancellationToken) is long kept ? kept : head + 1;
            }

            if (below > firstRetained)
            {
                targets.Add(new TrimTarget(topicId, firstRetained, below));
            }
        }

        return targets;
    }

    // One transaction: up to _trimChunkSize offsets, an equal share from each remaining target (at least
    // MinTrimShare, so many small backlogs take one statement each rather than one per offset), in plan
    // order until the budget is spent. Once committed, advances the targets and drops the finished ones.
    private async Task<long> TrimChunkAsync(List<TrimTarget> targets, CancellationToken cancellationToken)
    {
        var share = Math.Max(MinTrimShare, _trimChunkSize / targets.Count);
        long budget = _trimChunkSize;
        var chunk = new List<TrimTarget>(Math.Min(targets.Count, _trimChunkSize));
        for (var i = 0; i < targets.Count && budget > 0; i++)
        {
            var target = targets[i];
            var count = Math.Min(Math.Min(share, budget), target.Below - target.From);
            chunk.Add(target with { Below = target.From + count });
            budget -= count;
        }

        long removed = 0;
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var transaction = _writer.BeginTransaction(deferred: false);
            _commands.Enlist(transaction);
            foreach (var range in chunk)
            {
                removed += _commands.TrimRange(range.TopicId, range.From, range.Below);
            }

            transaction.Commit();
        }
        finally
        {
            _writeLock.Release();
        }

        var kept = 0;
        for (var i = 0; i < targets.Count; i++)
        {
            var target = i < chunk.Count ? targets[i] with { From = chunk[i].Below } : targets[i];
            if (target.From < target.Below)
            {
                targets[kept++] = target;
            }
        }

        targets.RemoveRange(kept, targets.Count - kept);
        return removed;
    }

    private static long SaturatingSubtract(long a, long b)
    {
        var result = a - b;
        return ((a ^ b) & (a ^ result)) < 0 ? (a < 0 ? long.MinValue : long.MaxValue) : result;
    }

    // Delete offsets in [From, Below) of the topic.
    private readonly record struct TrimTarget(long TopicId, long From, long Below);
}
