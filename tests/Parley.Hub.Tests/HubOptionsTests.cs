namespace Parley.Hub.Tests;

public class HubOptionsTests
{
    [Fact]
    public void Defaults_are_valid()
    {
        var options = new HubOptions();
        options.Validate();
        Assert.Equal(64 * 1024, options.MaxFrameBytes);
        Assert.Equal(100, options.MaxTopicsPerConnection);
    }

    public static TheoryData<string, Action<HubOptions>> OutOfRange => new()
    {
        { nameof(HubOptions.MaxFrameBytes), o => o.MaxFrameBytes = 100 },
        { nameof(HubOptions.MaxFrameBytes), o => o.MaxFrameBytes = 17 * 1024 * 1024 },
        { nameof(HubOptions.MaxBodyBytes), o => o.MaxBodyBytes = 0 },
        { nameof(HubOptions.MaxBodyBytes), o => o.MaxBodyBytes = o.MaxFrameBytes + 1 },
        { nameof(HubOptions.MaxMetaBytes), o => o.MaxMetaBytes = -1 },
        { nameof(HubOptions.MaxClientIdLength), o => o.MaxClientIdLength = 0 },
        { nameof(HubOptions.PushesPerSecond), o => o.PushesPerSecond = 0 },
        { nameof(HubOptions.PushesPerSecond), o => o.PushesPerSecond = -5 },
        { nameof(HubOptions.PushBurst), o => o.PushBurst = 0 },
        { nameof(HubOptions.RateLimitRejectionsBeforeClose), o => o.RateLimitRejectionsBeforeClose = 0 },
        { nameof(HubOptions.RateLimitWindow), o => o.RateLimitWindow = TimeSpan.FromMilliseconds(10) },
        { nameof(HubOptions.MaxTopicsPerConnection), o => o.MaxTopicsPerConnection = 0 },
        { nameof(HubOptions.IdleTimeout), o => o.IdleTimeout = TimeSpan.Zero },
        { nameof(HubOptions.MaxOutboundQueueBytes), o => o.MaxOutboundQueueBytes = 1024 },
        { nameof(HubOptions.RetentionMessagesPerTopic), o => o.RetentionMessagesPerTopic = 0 },
        { nameof(HubOptions.RetentionMaxAge), o => o.RetentionMaxAge = TimeSpan.FromMilliseconds(1) },
        { nameof(HubOptions.RetentionInterval), o => o.RetentionInterval = TimeSpan.FromDays(2) },
        { nameof(HubOptions.ReplayPageSize), o => o.ReplayPageSize = 0 },
        { nameof(HubOptions.HistoryMaxLimit), o => o.HistoryMaxLimit = 0 },
        { nameof(HubOptions.HistoryDefaultLimit), o => o.HistoryDefaultLimit = o.HistoryMaxLimit + 1 },
        { nameof(HubOptions.AppendBatchMax), o => o.AppendBatchMax = 0 },
        { nameof(HubOptions.AppendQueueCapacity), o => o.AppendQueueCapacity = 0 },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void Out_of_range_value_throws_naming_the_setting(string setting, Action<HubOptions> configure)
    {
        var options = new HubOptions();
        configure(options);

        var ex = Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
        Assert.Equal(setting, ex.ParamName);
        Assert.Contains(setting, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Hub_refuses_invalid_options()
    {
        var options = new HubOptions { MaxTopicsPerConnection = 0 };

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new ParleyHub(options, new InMemoryHistoryStore()));
        Assert.Equal(nameof(HubOptions.MaxTopicsPerConnection), ex.ParamName);
    }

    [Fact]
    public void Bounds_are_inclusive()
    {
        var options = new HubOptions
        {
            MaxFrameBytes = 1024,
            MaxBodyBytes = 1024,
            MaxMetaBytes = 0,
            PushesPerSecond = 1_000_000,
            PushBurst = 1,
            MaxTopicsPerConnection = 1,
            RateLimitWindow = TimeSpan.FromMilliseconds(100),
            HistoryDefaultLimit = 200,
            HistoryMaxLimit = 200,
        };

        options.Validate();
        Assert.Equal(1024, options.MaxBodyBytes);
    }
}
