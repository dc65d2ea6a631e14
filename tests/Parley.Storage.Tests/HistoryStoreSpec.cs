using Parley.Hub.History;

namespace Parley.Storage.Tests;

/// <summary>
/// The storage specification: behaviour every <see cref="IHistoryStore"/> must have. An implementation's
/// test class derives from this and supplies the factories; every fact here then runs against it.
/// </summary>
public abstract class HistoryStoreSpec : IAsyncLifetime
{
    /// <summary>Upper bound for every await in the suite, so a hung store fails instead of hanging the run.</summary>
    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly List<IHistoryStore> _opened = [];

    /// <summary>Creates a fresh, empty store. Called at most once per test, before any <see cref="ReopenStoreAsync"/>.</summary>
    protected abstract Task<IHistoryStore> CreateStoreAsync();

    /// <summary>Opens the data of the store last created (or reopened) again; the previous instance has been disposed.</summary>
    protected abstract Task<IHistoryStore> ReopenStoreAsync();

    /// <inheritdoc />
    public Task InitializeAsync() => Task.CompletedTask;

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await store.DisposeAsync().AsTask().WaitAsync(Timeout);
        }
    }

    // ---- helpers -------------------------------------------------------------------------------

    /// <summary>A fresh store that is disposed when the test ends.</summary>
    protected async Task<IHistoryStore> NewStoreAsync()
    {
        var store = await CreateStoreAsync().WaitAsync(Timeout);
        _opened.Add(store);
        return store;
    }

    /// <summary>Disposes <paramref name="store"/> and reopens its data; the new instance is disposed when the test ends.</summary>
    protected async Task<IHistoryStore> RestartAsync(IHistoryStore store)
    {
        await store.DisposeAsync().AsTask().WaitAsync(Timeout);
        var reopened = await ReopenStoreAsync().WaitAsync(Timeout);
        _opened.Add(reopened);
        return reopened;
    }

    protected static AppendRequest Req(string topic, string id, long ts = 1_000, string? clientId = null, string? body = null, string? meta = null, string from = "alice") =>
        new(topic, id, ts, from, body ?? "body of " + id, clientId, meta);

    protected static Task<IReadOnlyList<AppendOutcome>> Append(IHistoryStore store, params AppendRequest[] batch) =>
        store.AppendBatchAsync(batch).AsTask().WaitAsync(Timeout);

    protected static Task<TopicPosition> Position(IHistoryStore store, string topic) =>
        store.GetPositionAsync(topic).AsTask().WaitAsync(Timeout);

    protected static Task<IReadOnlyList<StoredMessage>> Range(IHistoryStore store, string topic, long after, long through, int limit = 1000) =>
        store.ReadRangeAsync(topic, after, through, limit).AsTask().WaitAsync(Timeout);

    protected static Task<IReadOnlyList<StoredMessage>> Since(IHistoryStore store, string topic, long sinceMs, long through = long.MaxValue, int limit = 1000) =>
        store.ReadSinceTimeAsync(topic, sinceMs, through, limit).AsTask().WaitAsync(Timeout);

    protected static Task<IReadOnlyList<StoredMessage>> Before(IHistoryStore store, string topic, long before, int limit = 1000) =>
        store.ReadBeforeAsync(topic, before, limit).AsTask().WaitAsync(Timeout);

    protected static Task<long> Trim(IHistoryStore store, int maxMessages, TimeSpan maxAge, long nowMs) =>
        store.TrimAsync(new RetentionPolicy(maxMessages, maxAge), nowMs).AsTask().WaitAsync(Timeout);

    /// <summary>Appends <paramref name="count"/> messages with ids <c>{topic}-1..</c> and timestamps <c>1000, 2000, ...</c>.</summary>
    protected static async Task AppendNumbered(IHistoryStore store, string topic, int count)
    {
        var batch = Enumerable.Range(1, count).Select(i => Req(topic, $"{topic}-{i}", ts: i * 1000L)).ToArray();
        var outcomes = await Append(store, batch);
        Assert.All(outcomes, o => Assert.False(o.Duplicate));
    }

    private static List<long> Offsets(IEnumerable<StoredMessage> messages) => messages.Select(m => m.Offset).ToList();

    private static long[] Seq(long from, long through) =>
        from > through ? [] : Enumerable.Range(0, checked((int)(through - from + 1))).Select(i => from + i).ToArray();

    // ---- rename --------------------------------------------------------------------------------

    [Fact]
    public async Task Rename_moves_history_and_offsets_continue_under_the_new_name()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:old", 3);

        Assert.True(await store.RenameTopicAsync("room:old", "room:new").AsTask().WaitAsync(Timeout));

        Assert.Equal(0, (await Position(store, "room:old")).Head);
        Assert.Empty(await Range(store, "room:old", 0, long.MaxValue));
        var moved = await Range(store, "room:new", 0, long.MaxValue);
        Assert.Equal([1L, 2L, 3L], moved.Select(m => m.Offset));
        Assert.All(moved, m => Assert.Equal("room:new", m.Topic));
        var next = await Append(store, Req("room:new", "after-rename"));
        Assert.Equal(4, next[0].Message.Offset);

        store = await RestartAsync(store);
        Assert.Equal(4, (await Position(store, "room:new")).Head);
        Assert.Equal(0, (await Position(store, "room:old")).Head);
    }

    [Fact]
    public async Task Rename_refuses_a_target_with_history_and_a_missing_source_is_a_no_op()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 2);
        await AppendNumbered(store, "room:b", 1);

        Assert.False(await store.RenameTopicAsync("room:a", "room:b").AsTask().WaitAsync(Timeout));
        Assert.Equal(2, (await Position(store, "room:a")).Head);
        Assert.Equal(1, (await Position(store, "room:b")).Head);
        Assert.True(await store.RenameTopicAsync("room:none", "room:c").AsTask().WaitAsync(Timeout));
        Assert.Equal(0, (await Position(store, "room:c")).Head);
    }

    // ---- appends -------------------------------------------------------------------------------

    [Fact]
    public async Task Empty_batch_returns_empty_and_stores_nothing()
    {
        var store = await NewStoreAsync();

        var outcomes = await Append(store);

        Assert.Empty(outcomes);
        var position = await Position(store, "room:a");
        Assert.Equal(0, position.Head);
    }

    [Fact]
    public async Task Offsets_start_at_one_and_are_contiguous_across_batches()
    {
        var store = await NewStoreAsync();

        var first = await Append(store, Req("room:a", "m1"), Req("room:a", "m2"), Req("room:a", "m3"));
        var second = await Append(store, Req("room:a", "m4"));
        var third = await Append(store, Req("room:a", "m5"), Req("room:a", "m6"));

        Assert.Equal(Seq(1, 6), first.Concat(second).Concat(third).Select(o => o.Message.Offset).ToArray());
        Assert.All(first.Concat(second).Concat(third), o => Assert.False(o.Duplicate));
        Assert.Equal(6, (await Position(store, "room:a")).Head);
    }

    [Fact]
    public async Task Offsets_are_independent_per_topic_and_outcomes_follow_request_order()
    {
        var store = await NewStoreAsync();
        await Append(store, Req("room:b", "b0"));

        var batch = new[]
        {
            Req("room:a", "a1"), Req("room:b", "b1"), Req("room:a", "a2"),
            Req("room:c", "c1"), Req("room:b", "b2"), Req("room:a", "a3"),
        };
        var outcomes = await Append(store, batch);

        Assert.Equal(batch.Select(r => r.Id), outcomes.Select(o => o.Message.Id));
        Assert.Equal(batch.Select(r => r.Topic), outcomes.Select(o => o.Message.Topic));
        Assert.Equal(new long[] { 1, 2, 2, 1, 3, 3 }, outcomes.Select(o => o.Message.Offset).ToArray());
        Assert.Equal(3, (await Position(store, "room:a")).Head);
        Assert.Equal(3, (await Position(store, "room:b")).Head);
        Assert.Equal(1, (await Position(store, "room:c")).Head);
        Assert.Equal(["a1", "a2", "a3"], (await Range(store, "room:a", 0, 10)).Select(m => m.Id));
        Assert.Equal(["b0", "b1", "b2"], (await Range(store, "room:b", 0, 10)).Select(m => m.Id));
    }

    [Fact]
    public async Task All_fields_round_trip()
    {
        var store = await NewStoreAsync();
        var longBody = new string('x', 16 * 1024);
        var batch = new[]
        {
            new AppendRequest("room:\u00e9t\u00e9", "id-1", 1_700_000_000_123, "bob", "hello \u2603 \U0001F600 \"quoted\" 'single' \n new line", "cid-1", """{"reply_to":"abc","n":[1,2]}"""),
            new AppendRequest("room:\u00e9t\u00e9", "id-2", 1_700_000_000_124, "conn-42", "", null, null),
            new AppendRequest("room:\u00e9t\u00e9", "id-3", 0, "carol", longBody, null, "{}"),
            new AppendRequest("room:\u00e9t\u00e9", "id-4", long.MaxValue, "dave", "max ts", "cid-4", null),
        };

        var outcomes = await Append(store, batch);
        var read = await Range(store, "room:\u00e9t\u00e9", 0, long.MaxValue);

        for (var i = 0; i < batch.Length; i++)
        {
            var r = batch[i];
            var expected = new StoredMessage(r.Topic, i + 1, r.Id, r.TimestampMs, r.From, r.Body, r.ClientId, r.MetaJson);
            Assert.Equal(expected, outcomes[i].Message);
            Assert.Equal(expected, read[i]);
        }

        Assert.Equal(batch.Length, read.Count);
    }

    [Fact]
    public async Task Duplicate_client_id_within_a_batch_returns_the_original()
    {
        var store = await NewStoreAsync();

        var outcomes = await Append(
            store,
            Req("room:a", "m1", clientId: "k1", body: "first"),
            Req("room:a", "m2", clientId: "k1", body: "second"),
            Req("room:a", "m3"));

        Assert.False(outcomes[0].Duplicate);
        Assert.True(outcomes[1].Duplicate);
        Assert.Equal(outcomes[0].Message, outcomes[1].Message);
        Assert.Equal("first", outcomes[1].Message.Body);
        Assert.False(outcomes[2].Duplicate);
        Assert.Equal(2, outcomes[2].Message.Offset);
        Assert.Equal(2, (await Position(store, "room:a")).Head);
        Assert.Equal(["m1", "m3"], (await Range(store, "room:a", 0, 10)).Select(m => m.Id));
    }

    [Fact]
    public async Task Duplicate_client_id_across_batches_returns_the_original_and_does_not_advance_head()
    {
        var store = await NewStoreAsync();
        var original = (await Append(store, Req("room:a", "m1", ts: 111, clientId: "k1", body: "first", meta: """{"a":1}""")))[0];
        await Append(store, Req("room:a", "m2"));

        var repeat = await Append(store, Req("room:a", "m9", ts: 999, clientId: "k1", body: "changed", meta: null));

        Assert.True(repeat[0].Duplicate);
        Assert.Equal(original.Message, repeat[0].Message);
        Assert.Equal(2, (await Position(store, "room:a")).Head);
        Assert.Equal(2, (await Range(store, "room:a", 0, 10)).Count);

        var next = await Append(store, Req("room:a", "m3"));
        Assert.Equal(3, next[0].Message.Offset);
    }

    [Fact]
    public async Task Same_client_id_in_different_topics_is_not_a_duplicate()
    {
        var store = await NewStoreAsync();

        var outcomes = await Append(store, Req("room:a", "a1", clientId: "k"), Req("room:b", "b1", clientId: "k"));
        var later = await Append(store, Req("room:c", "c1", clientId: "k"));

        Assert.All(outcomes.Concat(later), o => Assert.False(o.Duplicate));
        Assert.Equal(["a1", "b1", "c1"], outcomes.Concat(later).Select(o => o.Message.Id));
        Assert.All(outcomes.Concat(later), o => Assert.Equal(1, o.Message.Offset));
    }

    [Fact]
    public async Task Messages_without_client_id_are_never_duplicates()
    {
        var store = await NewStoreAsync();

        var outcomes = await Append(store, Req("room:a", "same-id"), Req("room:a", "same-id"));

        Assert.All(outcomes, o => Assert.False(o.Duplicate));
        Assert.Equal([1L, 2L], outcomes.Select(o => o.Message.Offset));
    }

    [Fact]
    public async Task Many_topics_in_one_batch_get_independent_contiguous_offsets()
    {
        var store = await NewStoreAsync();
        const int Topics = 150;
        const int PerTopic = 4;
        var outcomes = new List<AppendOutcome>();
        for (var b = 0; b < 3; b++)
        {
            // Interleaved: topic 0, 1, ..., 149, 0, 1, ... with every third message carrying a client id.
            var batch = Enumerable.Range(0, Topics * PerTopic)
                .Select(i => Req($"room:t{i % Topics}", $"b{b}-{i}", ts: i, clientId: i % 3 == 0 ? $"k{b}-{i}" : null))
                .ToArray();
            var result = await Append(store, batch);
            Assert.Equal(batch.Select(r => (r.Topic, r.Id)), result.Select(o => (o.Message.Topic, o.Message.Id)));
            outcomes.AddRange(result);
        }

        Assert.All(outcomes, o => Assert.False(o.Duplicate));
        for (var t = 0; t < Topics; t++)
        {
            var topic = $"room:t{t}";
            Assert.Equal(Seq(1, 3 * PerTopic), outcomes.Where(o => o.Message.Topic == topic).Select(o => o.Message.Offset).ToArray());
            Assert.Equal(3 * PerTopic, (await Position(store, topic)).Head);
            var stored = await Range(store, topic, 0, long.MaxValue);
            Assert.Equal(outcomes.Where(o => o.Message.Topic == topic).Select(o => o.Message), stored);
        }

        // A repeat of a client id from an earlier batch, in the middle of a new many-topic batch.
        var repeat = await Append(store, Req("room:t5", "new-1"), Req("room:t0", "again", clientId: "k1-0"), Req("room:t0", "new-2"));
        Assert.False(repeat[0].Duplicate);
        Assert.True(repeat[1].Duplicate);
        Assert.Equal("b1-0", repeat[1].Message.Id);
        Assert.Equal(3 * PerTopic + 1, repeat[2].Message.Offset);
    }

    [Fact]
    public async Task Empty_strings_in_every_text_field_round_trip_and_an_empty_client_id_is_a_key()
    {
        var store = await NewStoreAsync();
        var multiByteBody = string.Concat(Enumerable.Repeat("é☃😀", 20_000));

        var outcomes = await Append(
            store,
            new AppendRequest("room:a", "", 1, "", "", "", ""),
            new AppendRequest("room:a", "id-2", 2, "bob", multiByteBody, null, null),
            new AppendRequest("room:a", "id-3", 3, "carol", "repeat", "", null));

        Assert.Equal(new StoredMessage("room:a", 1, "", 1, "", "", "", ""), outcomes[0].Message);
        Assert.False(outcomes[1].Duplicate);
        Assert.True(outcomes[2].Duplicate);
        Assert.Equal(outcomes[0].Message, outcomes[2].Message);
        var read = await Range(store, "room:a", 0, long.MaxValue);
        Assert.Equal([outcomes[0].Message, outcomes[1].Message], read);
        Assert.Equal(multiByteBody, read[1].Body);
    }

    [Fact]
    public async Task Concurrent_appends_produce_contiguous_offsets_without_loss()
    {
        var store = await NewStoreAsync();
        const int Writers = 8;
        const int BatchesPerWriter = 20;
        const int PerBatch = 5;

        var tasks = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            var offsets = new List<(string Topic, long Offset)>();
            for (var b = 0; b < BatchesPerWriter; b++)
            {
                var batch = Enumerable.Range(0, PerBatch)
                    .Select(i => Req(i % 2 == 0 ? "room:even" : "room:odd", $"w{w}-b{b}-i{i}", clientId: $"w{w}-b{b}-i{i}"))
                    .ToArray();
                var outcomes = await store.AppendBatchAsync(batch).AsTask().WaitAsync(Timeout);
                offsets.AddRange(outcomes.Select(o => (o.Message.Topic, o.Message.Offset)));
            }

            return offsets;
        })).ToArray();
        var results = (await Task.WhenAll(tasks).WaitAsync(Timeout)).SelectMany(r => r).ToList();

        const int Even = Writers * BatchesPerWriter * 3;
        const int Odd = Writers * BatchesPerWriter * 2;
        Assert.Equal(Seq(1, Even), results.Where(r => r.Topic == "room:even").Select(r => r.Offset).Order().ToArray());
        Assert.Equal(Seq(1, Odd), results.Where(r => r.Topic == "room:odd").Select(r => r.Offset).Order().ToArray());

        var even = await Range(store, "room:even", 0, long.MaxValue, limit: 10_000);
        Assert.Equal(Seq(1, Even), Offsets(even));
        Assert.Equal(Even, even.Select(m => m.Id).Distinct().Count());
        Assert.Equal(Even, (await Position(store, "room:even")).Head);
        Assert.Equal(Odd, (await Position(store, "room:odd")).Head);
    }

    [Fact]
    public async Task Reads_beside_concurrent_appends_see_a_contiguous_prefix()
    {
        var store = await NewStoreAsync();
        using var done = new CancellationTokenSource();

        var writer = Task.Run(async () =>
        {
            for (var b = 0; b < 40; b++)
            {
                await store.AppendBatchAsync([Req("room:a", $"m{b}-1"), Req("room:a", $"m{b}-2")]).AsTask().WaitAsync(Timeout);
            }
        });
        var reader = Task.Run(async () =>
        {
            var reads = 0;
            long lastHead = 0;
            while (!writer.IsCompleted || reads == 0)
            {
                var head = (await store.GetPositionAsync("room:a").AsTask().WaitAsync(Timeout)).Head;
                Assert.True(head >= lastHead, "head went backwards");
                var messages = await store.ReadRangeAsync("room:a", 0, long.MaxValue, 10_000).AsTask().WaitAsync(Timeout);
                Assert.True(messages.Count >= head, "a committed message is not readable");
                Assert.Equal(Seq(1, messages.Count), Offsets(messages));
                lastHead = head;
                reads++;
            }

            return reads;
        });

        await writer.WaitAsync(Timeout);
        Assert.True(await reader.WaitAsync(Timeout) > 0);
        Assert.Equal(80, (await Position(store, "room:a")).Head);
    }

    [Fact]
    public async Task Append_after_dispose_throws_ObjectDisposedException()
    {
        var store = await NewStoreAsync();
        await Append(store, Req("room:a", "m1"));
        await store.DisposeAsync().AsTask().WaitAsync(Timeout);

        await Assert.ThrowsAsync<ObjectDisposedException>(() => Append(store, Req("room:a", "m2")));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Position(store, "room:a"));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Range(store, "room:a", 0, 10));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Trim(store, 1, TimeSpan.Zero, 0));
    }

    // ---- positions and reads -------------------------------------------------------------------

    [Fact]
    public async Task Position_of_an_unknown_topic()
    {
        var store = await NewStoreAsync();
        await Append(store, Req("room:other", "m1"));

        var position = await Position(store, "room:nobody");
        var other = await Position(store, "room:other");

        Assert.Equal(0, position.Head);
        Assert.Equal(1, position.FirstRetained);
        Assert.Equal(0, position.LastTrimmedTimestampMs);
        Assert.False(string.IsNullOrEmpty(position.Epoch));
        Assert.Equal(other.Epoch, position.Epoch);
    }

    [Fact]
    public async Task Position_after_appends()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 4);

        var position = await Position(store, "room:a");

        Assert.Equal(4, position.Head);
        Assert.Equal(1, position.FirstRetained);
        Assert.Equal(0, position.LastTrimmedTimestampMs);
    }

    [Fact]
    public async Task ReadRange_after_is_exclusive_through_is_inclusive_and_limit_applies()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 10);
        await AppendNumbered(store, "room:b", 3);

        Assert.Equal(Seq(3, 7), Offsets(await Range(store, "room:a", 2, 7)));
        Assert.Equal(Seq(3, 5), Offsets(await Range(store, "room:a", 2, 7, limit: 3)));
        Assert.Equal(Seq(1, 10), Offsets(await Range(store, "room:a", 0, long.MaxValue)));
        Assert.Equal(Seq(9, 10), Offsets(await Range(store, "room:a", 8, 50)));
        Assert.Equal(["room:a-4"], (await Range(store, "room:a", 3, 4)).Select(m => m.Id));
        Assert.Empty(await Range(store, "room:a", 5, 5));
        Assert.Empty(await Range(store, "room:a", 7, 3));
        Assert.Empty(await Range(store, "room:a", 10, 20));
        Assert.Empty(await Range(store, "room:a", 0, 10, limit: 0));
        Assert.Empty(await Range(store, "room:a", 0, 10, limit: -5));
        Assert.Empty(await Range(store, "room:missing", 0, 10));
        Assert.All(await Range(store, "room:b", 0, 10), m => Assert.Equal("room:b", m.Topic));
    }

    [Fact]
    public async Task ReadSinceTime_filters_by_timestamp_and_through_offset_oldest_first()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 10); // ts = offset * 1000

        Assert.Equal(Seq(4, 10), Offsets(await Since(store, "room:a", 4000)));
        Assert.Equal(Seq(4, 10), Offsets(await Since(store, "room:a", 3001)));
        Assert.Equal(Seq(4, 6), Offsets(await Since(store, "room:a", 4000, through: 6)));
        Assert.Equal(Seq(4, 5), Offsets(await Since(store, "room:a", 4000, limit: 2)));
        Assert.Equal(Seq(1, 10), Offsets(await Since(store, "room:a", 0)));
        Assert.Empty(await Since(store, "room:a", 10_001));
        Assert.Empty(await Since(store, "room:a", 4000, through: 3));
        Assert.Empty(await Since(store, "room:a", 0, limit: 0));
        Assert.Empty(await Since(store, "room:missing", 0));
    }

    [Fact]
    public async Task ReadSinceTime_uses_timestamps_even_when_they_are_not_monotonic()
    {
        var store = await NewStoreAsync();
        await Append(
            store,
            Req("room:a", "m1", ts: 5000),
            Req("room:a", "m2", ts: 1000),
            Req("room:a", "m3", ts: 6000),
            Req("room:a", "m4", ts: 2000),
            Req("room:a", "m5", ts: 7000));

        Assert.Equal([1L, 3L, 5L], Offsets(await Since(store, "room:a", 5000)));
        Assert.Equal([1L, 3L], Offsets(await Since(store, "room:a", 5000, limit: 2)));
        Assert.Equal([1L, 3L, 4L, 5L], Offsets(await Since(store, "room:a", 2000)));
        Assert.Equal([3L, 5L], Offsets(await Since(store, "room:a", 5500)));
    }

    [Fact]
    public async Task ReadSinceTime_agrees_with_a_scan_of_the_retained_messages()
    {
        var store = await NewStoreAsync();
        var random = new Random(12345);
        long ts = 0;
        for (var b = 0; b < 12; b++)
        {
            // Timestamps mostly rise but often jump back, sometimes below zero; two topics interleaved.
            var batch = Enumerable.Range(0, 25).Select(i =>
            {
                ts += random.Next(0, 4) == 0 ? -random.Next(0, 3000) : random.Next(0, 1000);
                return Req(i % 3 == 0 ? "room:other" : "room:a", $"b{b}-{i}", ts: ts);
            }).ToArray();
            await Append(store, batch);
        }

        await Trim(store, 150, TimeSpan.Zero, nowMs: 0);
        var all = await Range(store, "room:a", 0, long.MaxValue);
        Assert.Equal((await Position(store, "room:a")).FirstRetained, all[0].Offset);
        var head = all[^1].Offset;
        var probes = all.SelectMany(m => new[] { m.TimestampMs - 1, m.TimestampMs, m.TimestampMs + 1 })
            .Append(long.MinValue).Append(long.MaxValue).Distinct().ToList();
        foreach (var since in probes)
        {
            foreach (var through in new[] { all[0].Offset - 1, all[0].Offset, head / 2, head - 1, head, long.MaxValue })
            {
                foreach (var limit in new[] { 1, 7, 1000 })
                {
                    var expected = all.Where(m => m.TimestampMs >= since && m.Offset <= through).Take(limit).ToList();
                    var actual = await Since(store, "room:a", since, through, limit);
                    Assert.True(expected.SequenceEqual(actual), $"since {since}, through {through}, limit {limit}: expected [{string.Join(",", Offsets(expected))}], got [{string.Join(",", Offsets(actual))}]");
                }
            }
        }
    }

    [Fact]
    public async Task ReadBefore_returns_newest_first_and_pages_to_the_start()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 7);

        Assert.Equal([7L, 6L, 5L], Offsets(await Before(store, "room:a", long.MaxValue, limit: 3)));
        Assert.Equal([4L, 3L], Offsets(await Before(store, "room:a", 5, limit: 2)));
        Assert.Empty(await Before(store, "room:a", 1));
        Assert.Empty(await Before(store, "room:a", long.MaxValue, limit: 0));
        Assert.Empty(await Before(store, "room:missing", long.MaxValue));

        var pages = new List<List<long>>();
        var before = long.MaxValue;
        while (true)
        {
            var page = await Before(store, "room:a", before, limit: 3);
            if (page.Count == 0)
            {
                break;
            }

            pages.Add(Offsets(page));
            before = page[^1].Offset;
            Assert.True(pages.Count <= 3, "paging did not terminate");
        }

        Assert.Equal([[7L, 6L, 5L], [4L, 3L, 2L], [1L]], pages);
    }

    // ---- retention -----------------------------------------------------------------------------

    [Fact]
    public async Task Trim_by_count_keeps_the_newest_and_keeps_head()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 10);
        await AppendNumbered(store, "room:small", 2);

        var removed = await Trim(store, 4, TimeSpan.Zero, nowMs: 1_000_000);

        Assert.Equal(6, removed);
        var position = await Position(store, "room:a");
        Assert.Equal(10, position.Head);
        Assert.Equal(7, position.FirstRetained);
        Assert.Equal(6000, position.LastTrimmedTimestampMs);
        Assert.Equal(Seq(7, 10), Offsets(await Range(store, "room:a", 0, long.MaxValue)));
        Assert.Equal([10L, 9L, 8L, 7L], Offsets(await Before(store, "room:a", long.MaxValue)));

        var small = await Position(store, "room:small");
        Assert.Equal(2, small.Head);
        Assert.Equal(1, small.FirstRetained);
        Assert.Equal(0, small.LastTrimmedTimestampMs);

        Assert.Equal(0, await Trim(store, 4, TimeSpan.Zero, nowMs: 1_000_000));
        var next = await Append(store, Req("room:a", "m11"));
        Assert.Equal(11, next[0].Message.Offset);
    }

    [Fact]
    public async Task Trim_by_age_removes_messages_older_than_max_age()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 10); // ts = offset * 1000

        // Cutoff = 10_000 - 5_500 = 4_500: ts 1000..4000 go, 5000.. stay.
        var removed = await Trim(store, 0, TimeSpan.FromMilliseconds(5_500), nowMs: 10_000);

        Assert.Equal(4, removed);
        var position = await Position(store, "room:a");
        Assert.Equal(10, position.Head);
        Assert.Equal(5, position.FirstRetained);
        Assert.Equal(4000, position.LastTrimmedTimestampMs);
        Assert.Equal(Seq(5, 10), Offsets(await Range(store, "room:a", 0, long.MaxValue)));
        Assert.Equal(Seq(5, 10), Offsets(await Since(store, "room:a", 0)));
    }

    [Fact]
    public async Task Trim_by_age_keeps_a_message_exactly_at_the_cutoff()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 5);

        var removed = await Trim(store, 0, TimeSpan.FromMilliseconds(7_000), nowMs: 10_000);

        Assert.Equal(2, removed);
        Assert.Equal(3, (await Position(store, "room:a")).FirstRetained);
    }

    [Fact]
    public async Task Trim_with_both_limits_applies_the_stricter_per_topic()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 10);
        await AppendNumbered(store, "room:b", 3);

        // Count keeps a:7..10 and all of b; age (cutoff 2_500) removes b:1,2.
        var removed = await Trim(store, 4, TimeSpan.FromMilliseconds(7_500), nowMs: 10_000);

        Assert.Equal(8, removed);
        Assert.Equal(7, (await Position(store, "room:a")).FirstRetained);
        var b = await Position(store, "room:b");
        Assert.Equal(3, b.FirstRetained);
        Assert.Equal(2000, b.LastTrimmedTimestampMs);
    }

    [Fact]
    public async Task Trimming_everything_leaves_first_retained_at_head_plus_one()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 3);

        var removed = await Trim(store, 0, TimeSpan.FromMilliseconds(1), nowMs: 1_000_000);

        Assert.Equal(3, removed);
        var position = await Position(store, "room:a");
        Assert.Equal(3, position.Head);
        Assert.Equal(4, position.FirstRetained);
        Assert.Equal(3000, position.LastTrimmedTimestampMs);
        Assert.Empty(await Range(store, "room:a", 0, long.MaxValue));
        Assert.Empty(await Before(store, "room:a", long.MaxValue));

        var next = await Append(store, Req("room:a", "m4", ts: 2_000_000));
        Assert.Equal(4, next[0].Message.Offset);
        position = await Position(store, "room:a");
        Assert.Equal(4, position.Head);
        Assert.Equal(4, position.FirstRetained);
        Assert.Equal(3000, position.LastTrimmedTimestampMs);
    }

    [Fact]
    public async Task Last_trimmed_timestamp_never_decreases()
    {
        var store = await NewStoreAsync();
        await Append(store, Req("room:a", "m1", ts: 9000), Req("room:a", "m2", ts: 1000), Req("room:a", "m3", ts: 2000));

        await Trim(store, 2, TimeSpan.Zero, nowMs: 10_000);
        Assert.Equal(9000, (await Position(store, "room:a")).LastTrimmedTimestampMs);

        await Trim(store, 1, TimeSpan.Zero, nowMs: 10_000);
        var position = await Position(store, "room:a");
        Assert.Equal(9000, position.LastTrimmedTimestampMs);
        Assert.Equal(3, position.FirstRetained);
    }

    [Fact]
    public async Task Trim_across_many_topics_with_uneven_backlogs()
    {
        var store = await NewStoreAsync();
        const int Topics = 12;
        // Topic t gets 5 * t messages, interleaved over a few batches; ts = 1000 * offset per topic.
        for (var round = 0; round < 5; round++)
        {
            var batch = Enumerable.Range(0, Topics)
                .SelectMany(t => Enumerable.Range(1, t).Select(i => (Topic: t, Offset: (round * t) + i)))
                .Select(x => Req($"room:t{x.Topic}", $"t{x.Topic}-{x.Offset}", ts: x.Offset * 1000L))
                .ToArray();
            await Append(store, batch);
        }

        // Count limit 7, then an age limit that removes ts < 20_000 (offsets below 20).
        var removedByCount = await Trim(store, 7, TimeSpan.Zero, nowMs: 0);
        var removedByAge = await Trim(store, 0, TimeSpan.FromMilliseconds(80_000), nowMs: 100_000);

        long expectedByCount = 0, expectedByAge = 0;
        for (var t = 0; t < Topics; t++)
        {
            var head = 5L * t;
            var afterCount = Math.Max(1, head - 7 + 1);
            var afterAge = head == 0 ? 1 : Math.Max(afterCount, Math.Min(20, head + 1));
            expectedByCount += afterCount - 1;
            expectedByAge += afterAge - afterCount;

            var position = await Position(store, $"room:t{t}");
            Assert.Equal(head, position.Head);
            Assert.Equal(afterAge, position.FirstRetained);
            Assert.Equal((afterAge - 1) * 1000, position.LastTrimmedTimestampMs);
            Assert.Equal(Seq(afterAge, head), Offsets(await Range(store, $"room:t{t}", 0, long.MaxValue)));
        }

        Assert.Equal(expectedByCount, removedByCount);
        Assert.Equal(expectedByAge, removedByAge);
    }

    [Fact]
    public async Task Trim_without_limits_removes_nothing()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 5);

        Assert.Equal(0, await Trim(store, 0, TimeSpan.Zero, nowMs: long.MaxValue));
        Assert.Equal(0, await Trim(store, -1, TimeSpan.FromSeconds(-1), nowMs: long.MaxValue));
        Assert.Equal(Seq(1, 5), Offsets(await Range(store, "room:a", 0, 10)));
        Assert.Equal(1, (await Position(store, "room:a")).FirstRetained);
    }

    [Fact]
    public async Task Client_id_of_a_trimmed_message_can_be_reused()
    {
        var store = await NewStoreAsync();
        await Append(store, Req("room:a", "m1", clientId: "k1"), Req("room:a", "m2", clientId: "k2"));
        await Trim(store, 1, TimeSpan.Zero, nowMs: 10_000);

        var outcomes = await Append(store, Req("room:a", "m3", clientId: "k1"), Req("room:a", "m4", clientId: "k2"));

        Assert.False(outcomes[0].Duplicate);
        Assert.Equal(3, outcomes[0].Message.Offset);
        Assert.Equal("m3", outcomes[0].Message.Id);
        Assert.True(outcomes[1].Duplicate);
        Assert.Equal("m2", outcomes[1].Message.Id);
        Assert.Equal(3, (await Position(store, "room:a")).Head);
    }

    // ---- restart -------------------------------------------------------------------------------

    [Fact]
    public async Task Data_head_and_epoch_survive_a_restart()
    {
        var store = await NewStoreAsync();
        var written = await Append(
            store,
            Req("room:a", "a1", ts: 1000, clientId: "k1", meta: """{"x":true}"""),
            Req("room:a", "a2", ts: 2000),
            Req("room:b", "b1", ts: 3000));
        var epoch = (await Position(store, "room:a")).Epoch;

        var reopened = await RestartAsync(store);

        var a = await Position(reopened, "room:a");
        Assert.Equal(new TopicPosition(2, epoch, 1, 0), a);
        Assert.Equal(epoch, (await Position(reopened, "room:unknown")).Epoch);
        Assert.Equal(written.Take(2).Select(o => o.Message), await Range(reopened, "room:a", 0, long.MaxValue));
        Assert.Equal([written[2].Message], await Range(reopened, "room:b", 0, long.MaxValue));

        var outcomes = await Append(reopened, Req("room:a", "a3"), Req("room:a", "again", clientId: "k1"), Req("room:b", "b2"));
        Assert.Equal(3, outcomes[0].Message.Offset);
        Assert.True(outcomes[1].Duplicate);
        Assert.Equal(written[0].Message, outcomes[1].Message);
        Assert.Equal(2, outcomes[2].Message.Offset);
    }

    [Fact]
    public async Task Many_batches_over_many_topics_survive_a_restart()
    {
        var store = await NewStoreAsync();
        const int Topics = 40;
        var expected = new Dictionary<string, List<StoredMessage>>();
        for (var b = 0; b < 30; b++)
        {
            var batch = Enumerable.Range(0, 60)
                .Select(i => Req($"room:t{(b * 7 + i) % Topics}", $"b{b}-{i}", ts: 10_000 + (b * 100) + i, clientId: i % 10 == 0 ? $"k{b}-{i}" : null))
                .ToArray();
            foreach (var outcome in await Append(store, batch))
            {
                (expected.TryGetValue(outcome.Message.Topic, out var list) ? list : expected[outcome.Message.Topic] = []).Add(outcome.Message);
            }
        }

        var reopened = await RestartAsync(store);

        foreach (var (topic, messages) in expected)
        {
            Assert.Equal(messages.Count, (await Position(reopened, topic)).Head);
            Assert.Equal(messages, await Range(reopened, topic, 0, long.MaxValue));
        }

        // Appends continue at each head; timestamps that go back after the restart are still found
        // (and not found) by time.
        var t0 = expected["room:t0"];
        var after = await Append(reopened, Req("room:t0", "late-low", ts: 5), Req("room:t0", "dup", clientId: "k0-0"), Req("room:t1", "late-1", ts: 20_000));
        Assert.Equal(t0.Count + 1, after[0].Message.Offset);
        Assert.True(after[1].Duplicate);
        Assert.Equal("b0-0", after[1].Message.Id);
        Assert.Equal(expected["room:t1"].Count + 1, after[2].Message.Offset);
        Assert.Equal(t0.Select(m => m.Id).Append("late-low"), (await Since(reopened, "room:t0", 5)).Select(m => m.Id));
        Assert.Equal(t0.Select(m => m.Id), (await Since(reopened, "room:t0", 6)).Select(m => m.Id));
        Assert.Equal(t0.Where(m => m.TimestampMs >= 12_000).Select(m => m.Id), (await Since(reopened, "room:t0", 12_000)).Select(m => m.Id));
    }

    [Fact]
    public async Task Retention_state_survives_a_restart()
    {
        var store = await NewStoreAsync();
        await AppendNumbered(store, "room:a", 6);
        await Trim(store, 0, TimeSpan.FromMilliseconds(1), nowMs: 1_000_000);

        var reopened = await RestartAsync(store);

        var position = await Position(reopened, "room:a");
        Assert.Equal(6, position.Head);
        Assert.Equal(7, position.FirstRetained);
        Assert.Equal(6000, position.LastTrimmedTimestampMs);
        var next = await Append(reopened, Req("room:a", "m7"));
        Assert.Equal(7, next[0].Message.Offset);
    }
}
