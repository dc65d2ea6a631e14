using Parley.Hub.History;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteHistoryStore
{
    private const string SelectTopicsSql = "SELECT topic, head, first_retained FROM topics;";

    // The first offset in [$from, $head] that is young enough to keep, walking the primary key ("+ts"
    // keeps the planner off the ts index). Costs about as many rows as will be deleted.
    private const string FirstKeptByAgeSql = """
        SELECT "offset" FROM messages
        WHERE topic = $topic AND "offset" >= $from AND "offset" <= $head AND +ts >= $cutoff
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
            foreach (var target in targets)
            {
                removed += await TrimTopicAsync(target, cancellationToken);
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

        var topics = new List<(string Topic, long Head, long FirstRetained)>();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = SelectTopicsSql;
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                topics.Add((reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2)));
            }
        }

        await using var firstKept = connection.CreateCommand();
        firstKept.CommandText = FirstKeptByAgeSql;
        var topicParameter = firstKept.Parameters.AddWithValue("$topic", string.Empty);
        var fromParameter = firstKept.Parameters.AddWithValue("$from", 0L);
        var headParameter = firstKept.Parameters.AddWithValue("$head", 0L);
        firstKept.Parameters.AddWithValue("$cutoff", ageCutoffMs ?? 0L);

        var targets = new List<TrimTarget>();
        foreach (var (topic, head, firstRetained) in topics)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var below = firstRetained;
            if (maxMessages > 0)
            {
                below = Math.Max(below, head - maxMessages + 1);
            }

            if (ageCutoffMs is not null && below <= head)
            {
                topicParameter.Value = topic;
                fromParameter.Value = below;
                headParameter.Value = head;
                below = await firstKept.ExecuteScalarAsync(cancellationToken) is long kept ? kept : head + 1;
            }

            if (below > firstRetained)
            {
                targets.Add(new TrimTarget(topic, firstRetained, below));
            }
        }

        return targets;
    }

    private async Task<long> TrimTopicAsync(TrimTarget target, CancellationToken cancellationToken)
    {
        long removed = 0;
        for (var from = target.From; from < target.Below;)
        {
            var below = Math.Min(target.Below, from + _trimChunkSize);
            await _writeLock.WaitAsync(cancellationToken);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                using var transaction = _writer.BeginTransaction(deferred: false);
                _commands.Enlist(transaction);
                removed += _commands.TrimRange(target.Topic, from, below);
                transaction.Commit();
            }
            finally
            {
                _writeLock.Release();
            }

            from = below;
        }

        return removed;
    }

    private static long SaturatingSubtract(long a, long b)
    {
        var result = a - b;
        return ((a ^ b) & (a ^ result)) < 0 ? (a < 0 ? long.MinValue : long.MaxValue) : result;
    }

    // Delete offsets in [From, Below) of Topic.
    private readonly record struct TrimTarget(string Topic, long From, long Below);
}
